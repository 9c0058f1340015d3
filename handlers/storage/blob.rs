//! Blob Storage through the official `azure_storage_blob` 1.x crate.
//!
//! Blobs are small documents here (raw cost pages, reports, exports), read and written whole. Names may
//! contain `/` to form virtual directories (`{workspace}/{subscription}/2024-05/page-0001.json`); the URL
//! is built segment by segment so the slashes stay slashes on the wire.

use std::sync::Arc;

use azure_core::http::Url;
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobContainerClientListBlobsOptions,
    BlockBlobClientCommitBlockListOptions, BlockBlobClientUploadOptions, BlockLookupList,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use bytes::Bytes;
use futures::TryStreamExt as _;
use futures::stream::BoxStream;

use super::connection::StorageConnection;
use super::transport::ServiceParts;
use super::{ETag, StorageError};

/// Maximum blob name length accepted by the service.
const MAX_BLOB_NAME: usize = 1024;

/// The Blob service of one account.
#[derive(Clone, Debug)]
pub struct BlobService {
    parts: Arc<ServiceParts>,
}

impl BlobService {
    pub(crate) fn new(connection: &StorageConnection) -> Result<Self, StorageError> {
        let parts = ServiceParts::new(connection, "blob", &connection.endpoints.blob)?;
        Ok(Self {
            parts: Arc::new(parts),
        })
    }

    /// A handle on one container (no request is sent).
    pub fn container(&self, name: &str) -> Result<Container, StorageError> {
        super::validate_dns_name("blob.container", name)?;
        let mut url = self.parts.endpoint.clone();
        push_segments(&mut url, [name])?;
        let client = BlobContainerClient::new(
            url.clone(),
            self.parts.credential.clone(),
            Some(BlobContainerClientOptions {
                client_options: self.parts.options.clone(),
                ..Default::default()
            }),
        )
        .map_err(|e| StorageError::from_sdk("blob.container", e))?;
        Ok(Container {
            name: name.to_owned(),
            url,
            client: Arc::new(client),
            parts: self.parts.clone(),
        })
    }
}

/// One blob container.
#[derive(Clone)]
pub struct Container {
    name: String,
    url: Url,
    client: Arc<BlobContainerClient>,
    parts: Arc<ServiceParts>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// A downloaded blob with the properties callers usually need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobContent {
    /// The whole content.
    pub bytes: Bytes,
    /// `Content-Type` as stored.
    pub content_type: Option<String>,
    /// The blob's current ETag, for a later conditional write.
    pub etag: Option<ETag>,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Full blob name (with its virtual directories).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `Content-Type` as stored.
    pub content_type: Option<String>,
}

/// A blob opened for reading as a stream of chunks, so a large blob never sits in memory whole.
pub struct BlobStream {
    /// Size in bytes, when the service said.
    pub size: Option<u64>,
    /// `Content-Type` as stored.
    pub content_type: Option<String>,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("size", &self.size)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Container {
    /// The container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the container unless it exists already.
    pub async fn create_if_not_exists(&self) -> Result<(), StorageError> {
        match self.client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) => match StorageError::from_sdk("blob.create_container", e) {
                StorageError::Conflict(d)
                    if d.code.as_deref() == Some("ContainerAlreadyExists") =>
                {
                    Ok(())
                }
                other => Err(other),
            },
        }
    }

    /// Deletes the container and everything in it; `false` if it did not exist.
    pub async fn delete_container(&self) -> Result<bool, StorageError> {
        match self.client.delete(None).await {
            Ok(_) => Ok(true),
            Err(e) => match StorageError::from_sdk("blob.delete_container", e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Writes (creates or overwrites) a blob.
    pub async fn put(
        &self,
        name: &str,
        content: Bytes,
        content_type: &str,
    ) -> Result<ETag, StorageError> {
        self.upload("blob.put", name, content, content_type, None, None)
            .await
    }

    /// Writes a blob only if no blob of that name exists: [`StorageError::Conflict`] otherwise.
    ///
    /// This is how a handler that may run twice (at-least-once queues) writes "exactly once".
    pub async fn put_if_absent(
        &self,
        name: &str,
        content: Bytes,
        content_type: &str,
    ) -> Result<ETag, StorageError> {
        self.upload(
            "blob.put_if_absent",
            name,
            content,
            content_type,
            None,
            Some("*"),
        )
        .await
    }

    /// Overwrites a blob only if it still has `etag`: [`StorageError::PreconditionFailed`] otherwise.
    pub async fn put_if_match(
        &self,
        name: &str,
        content: Bytes,
        content_type: &str,
        etag: &ETag,
    ) -> Result<ETag, StorageError> {
        self.upload(
            "blob.put_if_match",
            name,
            content,
            content_type,
            Some(etag.as_str()),
            None,
        )
        .await
    }

    async fn upload(
        &self,
        operation: &'static str,
        name: &str,
        content: Bytes,
        content_type: &str,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<ETag, StorageError> {
        let blob = self.blob_client(operation, name)?;
        let options = BlockBlobClientUploadOptions {
            blob_content_type: Some(content_type.to_owned()),
            if_match: if_match.map(Into::into),
            if_none_match: if_none_match.map(Into::into),
            ..Default::default()
        };
        let result = blob
            .upload(content.into(), Some(options))
            .await
            // If-None-Match: * over an existing blob answers 409 BlobAlreadyExists (Conflict); a stale
            // If-Match answers 412 (PreconditionFailed).
            .map_err(|e| StorageError::from_sdk(operation, e))?;
        result
            .etag
            .map(|e| ETag::new(e.to_string()))
            .ok_or_else(|| StorageError::other(operation, "the service returned no ETag"))
    }

    /// Reads a whole blob; `None` if it does not exist. Zero-byte blobs come back as empty [`Bytes`].
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(self.get_with_properties(name).await?.map(|c| c.bytes))
    }

    /// Reads a whole blob with its content type and ETag; `None` if it does not exist.
    pub async fn get_with_properties(
        &self,
        name: &str,
    ) -> Result<Option<BlobContent>, StorageError> {
        const OP: &str = "blob.get";
        let blob = self.blob_client(OP, name)?;
        let result = match blob.download(None).await {
            Ok(result) => result,
            Err(e) => {
                return match StorageError::from_sdk(OP, e) {
                    StorageError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let content_type = result.properties.content_type.clone();
        let etag = result
            .properties
            .etag
            .as_ref()
            .map(|e| ETag::new(e.to_string()));
        let bytes = result
            .body
            .collect()
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        Ok(Some(BlobContent {
            bytes,
            content_type,
            etag,
        }))
    }

    /// Uploads one block of a block blob (Put Block). Nothing is visible until
    /// [`Container::commit_blocks`] names it; uncommitted blocks are discarded by the service after
    /// a week. Staging the same id again replaces that block, so a rerun after a crash starts over.
    /// All ids of one blob must have the same length.
    pub async fn stage_block(
        &self,
        name: &str,
        block_id: &[u8],
        content: Bytes,
    ) -> Result<(), StorageError> {
        const OP: &str = "blob.stage_block";
        let blob = self.blob_client(OP, name)?.block_blob_client();
        let length = content.len() as u64;
        blob.stage_block(block_id, length, content.into(), None)
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        Ok(())
    }

    /// Makes the blob the staged blocks `block_ids`, in order (Put Block List), replacing whatever
    /// the blob held.
    pub async fn commit_blocks(
        &self,
        name: &str,
        block_ids: Vec<Vec<u8>>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        const OP: &str = "blob.commit_blocks";
        let blob = self.blob_client(OP, name)?.block_blob_client();
        let list = BlockLookupList {
            latest: Some(block_ids),
            ..Default::default()
        };
        let options = BlockBlobClientCommitBlockListOptions {
            blob_content_type: Some(content_type.to_owned()),
            ..Default::default()
        };
        blob.commit_block_list(
            list.try_into().map_err(|e| StorageError::from_sdk(OP, e))?,
            Some(options),
        )
        .await
        .map_err(|e| StorageError::from_sdk(OP, e))?;
        Ok(())
    }

    /// Opens a blob for streaming; `None` if it does not exist.
    pub async fn open(&self, name: &str) -> Result<Option<BlobStream>, StorageError> {
        const OP: &str = "blob.open";
        let blob = self.blob_client(OP, name)?;
        let result = match blob.download(None).await {
            Ok(result) => result,
            Err(e) => {
                return match StorageError::from_sdk(OP, e) {
                    StorageError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        Ok(Some(BlobStream {
            size: result.properties.content_length,
            content_type: result.properties.content_type.clone(),
            body: Box::pin(
                result
                    .body
                    .map_err(|e| StorageError::from_sdk("blob.read", e)),
            ),
        }))
    }

    /// Deletes a blob; `false` if it did not exist (deleting twice is not an error).
    pub async fn delete(&self, name: &str) -> Result<bool, StorageError> {
        const OP: &str = "blob.delete";
        let blob = self.blob_client(OP, name)?;
        match blob.delete(None::<BlobClientDeleteOptions<'_>>).await {
            Ok(_) => Ok(true),
            Err(e) => match StorageError::from_sdk(OP, e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Lists every blob whose name starts with `prefix` (all pages), in name order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, StorageError> {
        const OP: &str = "blob.list";
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            ..Default::default()
        };
        let mut pages = self
            .client
            .list_blobs(Some(options))
            .map_err(|e| StorageError::from_sdk(OP, e))?
            .into_pages();
        let mut out = Vec::new();
        while let Some(page) = pages
            .try_next()
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?
        {
            let page = page
                .into_model()
                .map_err(|e| StorageError::from_sdk(OP, e))?;
            for item in page.blob_items {
                let Some(name) = item.name else { continue };
                let properties = item.properties.unwrap_or_default();
                out.push(BlobInfo {
                    name,
                    size: properties.content_length.unwrap_or(0),
                    content_type: properties.content_type,
                });
            }
        }
        Ok(out)
    }

    fn blob_client(&self, operation: &'static str, name: &str) -> Result<BlobClient, StorageError> {
        validate_blob_name(operation, name)?;
        let mut url = self.url.clone();
        push_segments(&mut url, name.split('/'))?;
        BlobClient::new(
            url,
            self.parts.credential.clone(),
            Some(BlobClientOptions {
                client_options: self.parts.options.clone(),
                ..Default::default()
            }),
        )
        .map_err(|e| StorageError::from_sdk(operation, e))
    }
}

/// Blob names: 1–1024 characters, no empty, `.` or `..` segments (the URL would silently drop or collapse
/// them), no control characters.
fn validate_blob_name(operation: &'static str, name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BLOB_NAME
        && !name.chars().any(|c| c.is_control() || c == '\\')
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            operation,
            "invalid blob name (1-1024 characters, no empty, `.` or `..` path segments, no control characters)",
        ))
    }
}

/// Appends percent-encoded path segments to an endpoint that has no trailing slash.
fn push_segments<'a>(
    url: &mut Url,
    segments: impl IntoIterator<Item = &'a str>,
) -> Result<(), StorageError> {
    url.path_segments_mut()
        .map_err(|()| {
            StorageError::invalid_input("blob.url", "the blob endpoint cannot be a base URL")
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_with_virtual_directories_keep_their_slashes() {
        let mut url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/raw-cost-pages").unwrap();
        push_segments(&mut url, "ws-1/sub 2/page#1.json".split('/')).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/raw-cost-pages/ws-1/sub%202/page%231.json"
        );
    }

    #[test]
    fn blob_names_without_surprises_are_accepted() {
        assert!(validate_blob_name("t", "a").is_ok());
        assert!(validate_blob_name("t", "ws/2024-05/page-0001.json").is_ok());
        assert!(validate_blob_name("t", "").is_err());
        assert!(validate_blob_name("t", "a//b").is_err());
        assert!(validate_blob_name("t", "/a").is_err());
        assert!(validate_blob_name("t", "a/../b").is_err());
        assert!(validate_blob_name("t", "a\nb").is_err());
        assert!(validate_blob_name("t", &"x".repeat(1025)).is_err());
    }
}
