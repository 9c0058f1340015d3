//! Azure Resource Graph: resource inventory for a subscription.
//!
//! Paging resends the **same query and scopes** with `options.$skipToken` from the previous page. The
//! response's `data` is an array of objects (the default `objectArray` format) or a `{columns, rows}`
//! table; both become rows of named values. `resultTruncated` is a string (`"true"`/`"false"`).

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api_version;
use super::client::AzureClient;
use super::error::AzureError;

/// The most rows Resource Graph returns per page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The inventory query: `id` is projected so paging order is stable. A VM's power state lives in
/// `properties.extended.instanceView` (Resource Graph fills it for VMs only); it is projected as one
/// column instead of the whole `properties` bag, which can be large.
pub const RESOURCES_QUERY: &str = "Resources \
    | extend powerState = tostring(properties.extended.instanceView.powerState.code) \
    | project id, name, type, location, resourceGroup, subscriptionId, tags, sku, kind, powerState \
    | order by id asc";

/// A Resource Graph query over some subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceGraphQuery {
    pub subscriptions: Vec<String>,
    pub query: String,
    /// Rows per page (1..=1000); the service default when `None`.
    pub page_size: Option<u32>,
}

impl ResourceGraphQuery {
    fn body(&self, skip_token: Option<&str>) -> Value {
        let mut options = Map::new();
        options.insert("resultFormat".into(), json!("objectArray"));
        if let Some(top) = self.page_size {
            options.insert("$top".into(), json!(top.clamp(1, MAX_PAGE_SIZE)));
        }
        if let Some(token) = skip_token {
            options.insert("$skipToken".into(), json!(token));
        }
        json!({
            "subscriptions": self.subscriptions,
            "query": self.query,
            "options": options,
        })
    }
}

/// One page of Resource Graph rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceGraphPage {
    pub total_records: Option<i64>,
    pub count: Option<i64>,
    pub result_truncated: bool,
    pub skip_token: Option<String>,
    pub rows: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageWire {
    #[serde(default)]
    total_records: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    result_truncated: Option<Value>,
    #[serde(default, rename = "$skipToken")]
    skip_token: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct TableWire {
    columns: Vec<super::cost::Column>,
    rows: Vec<Vec<Value>>,
}

impl ResourceGraphPage {
    pub fn from_json(body: &[u8]) -> Result<Self, AzureError> {
        let wire: PageWire = serde_json::from_slice(body)
            .map_err(|e| AzureError::invalid_response(format!("resource graph: {e}")))?;
        let rows = match wire.data {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => Ok(map),
                    _ => Err(AzureError::invalid_response(
                        "resource graph: a row is not an object",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Value::Object(_) => {
                let table: TableWire = serde_json::from_value(wire.data).map_err(|e| {
                    AzureError::invalid_response(format!("resource graph table: {e}"))
                })?;
                table
                    .rows
                    .into_iter()
                    .map(|row| {
                        table
                            .columns
                            .iter()
                            .map(|c| c.name.clone())
                            .zip(row)
                            .collect::<Map<_, _>>()
                    })
                    .collect()
            }
            Value::Null => Vec::new(),
            _ => return Err(AzureError::invalid_response("resource graph: bad data")),
        };
        let result_truncated = match wire.result_truncated {
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        Ok(Self {
            total_records: wire.total_records,
            count: wire.count,
            result_truncated,
            skip_token: wire.skip_token.filter(|t| !t.is_empty()),
            rows,
        })
    }

    /// The rows as resources (rows without an `id` are skipped).
    pub fn resources(&self) -> Vec<GraphResource> {
        self.rows
            .iter()
            .filter_map(GraphResource::from_row)
            .collect()
    }
}

/// A resource from the inventory query.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphResource {
    pub id: String,
    pub name: Option<String>,
    /// The resource type, lower case as Resource Graph returns it.
    pub kind: Option<String>,
    pub location: Option<String>,
    pub resource_group: Option<String>,
    pub subscription_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub sku: Option<Value>,
    /// A VM's power state code as Azure spells it (`PowerState/running`); `None` for other types.
    pub power_state: Option<String>,
}

impl GraphResource {
    pub fn from_row(row: &Map<String, Value>) -> Option<Self> {
        let text = |key: &str| row.get(key).and_then(Value::as_str).map(str::to_owned);
        let tags = match row.get("tags") {
            Some(Value::Object(tags)) => tags
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), value)
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Some(Self {
            id: text("id")?,
            name: text("name"),
            kind: text("type"),
            location: text("location"),
            resource_group: text("resourceGroup"),
            subscription_id: text("subscriptionId"),
            tags,
            sku: row.get("sku").filter(|v| !v.is_null()).cloned(),
            // The projected column; a row that carries the whole `properties` bag instead (a query
            // without the projection) has it nested.
            power_state: text("powerState")
                .or_else(|| {
                    row.get("properties")
                        .and_then(|p| p.pointer("/extended/instanceView/powerState/code"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .filter(|s| !s.is_empty()),
        })
    }
}

/// Pages of a Resource Graph query.
pub struct ResourceGraphPages {
    client: AzureClient,
    query: ResourceGraphQuery,
    skip_token: Option<String>,
    done: bool,
}

impl fmt::Debug for ResourceGraphPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceGraphPages")
            .field("subscriptions", &self.query.subscriptions.len())
            .field("done", &self.done)
            .finish()
    }
}

impl ResourceGraphPages {
    pub async fn next_page(&mut self) -> Result<Option<ResourceGraphPage>, AzureError> {
        if self.done {
            return Ok(None);
        }
        let url = self.client.url(
            &["providers", "Microsoft.ResourceGraph", "resources"],
            &[("api-version", api_version::RESOURCE_GRAPH)],
        )?;
        let body = self.query.body(self.skip_token.as_deref());
        let reply = self
            .client
            .send(Method::POST, url, Some(&body), 1.0)
            .await?;
        let page = ResourceGraphPage::from_json(&reply.body)?;
        match &page.skip_token {
            Some(token) if Some(token) == self.skip_token.as_ref() => {
                return Err(AzureError::invalid_response(
                    "resource graph: $skipToken repeats the current page",
                ));
            }
            Some(token) => self.skip_token = Some(token.clone()),
            None => self.done = true,
        }
        Ok(Some(page))
    }

    pub fn into_stream(self) -> impl futures::Stream<Item = Result<ResourceGraphPage, AzureError>> {
        futures::stream::try_unfold(self, |mut pages| async move {
            Ok(pages.next_page().await?.map(|page| (page, pages)))
        })
    }
}

impl AzureClient {
    /// Runs a Resource Graph query; read it page by page.
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), subscriptions = query.subscriptions.len()))]
    pub fn resource_graph(
        &self,
        query: ResourceGraphQuery,
    ) -> Result<ResourceGraphPages, AzureError> {
        for subscription in &query.subscriptions {
            self.id(subscription, "subscription id")?;
        }
        if query.subscriptions.is_empty() {
            return Err(AzureError::InvalidRequest(
                "a Resource Graph query needs at least one subscription".into(),
            ));
        }
        Ok(ResourceGraphPages {
            client: self.clone(),
            query,
            skip_token: None,
            done: false,
        })
    }

    /// The resource inventory of one subscription ([`RESOURCES_QUERY`]), 1,000 rows a page.
    pub fn list_resources(&self, subscription_id: &str) -> Result<ResourceGraphPages, AzureError> {
        self.resource_graph(ResourceGraphQuery {
            subscriptions: vec![subscription_id.to_owned()],
            query: RESOURCES_QUERY.to_owned(),
            page_size: Some(MAX_PAGE_SIZE),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_format_becomes_named_rows() {
        let body = br#"{"totalRecords":1,"count":1,"resultTruncated":"true","data":{"columns":[{"name":"id","type":"string"},{"name":"tags","type":"object"}],"rows":[["/subscriptions/s/x",{"env":"prod","n":3}]]}}"#;
        let page = ResourceGraphPage::from_json(body).unwrap();
        assert!(page.result_truncated);
        let resources = page.resources();
        assert_eq!(resources[0].id, "/subscriptions/s/x");
        assert_eq!(resources[0].tags["env"], "prod");
        assert_eq!(resources[0].tags["n"], "3");
        assert_eq!(resources[0].power_state, None);
    }

    #[test]
    fn the_power_state_is_read_from_its_column_or_from_properties() {
        let body = br#"{"data":[
            {"id":"/a","powerState":"PowerState/running"},
            {"id":"/b","powerState":""},
            {"id":"/c","properties":{"extended":{"instanceView":{"powerState":{"code":"PowerState/deallocated"}}}}}]}"#;
        let states: Vec<_> = ResourceGraphPage::from_json(body)
            .unwrap()
            .resources()
            .into_iter()
            .map(|r| r.power_state)
            .collect();
        assert_eq!(
            states,
            [
                Some("PowerState/running".to_owned()),
                None,
                Some("PowerState/deallocated".to_owned())
            ]
        );
    }

    #[test]
    fn the_skip_token_goes_in_the_options() {
        let query = ResourceGraphQuery {
            subscriptions: vec!["s".into()],
            query: "Resources".into(),
            page_size: Some(5000),
        };
        let body = query.body(Some("tok"));
        assert_eq!(body["options"]["$skipToken"], "tok");
        assert_eq!(body["options"]["$top"], 1000);
        assert_eq!(body["subscriptions"], json!(["s"]));
    }
}
