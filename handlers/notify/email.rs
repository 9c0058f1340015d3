//! Email delivery port. The message (plain-text and HTML parts) is rendered by
//! [`render::email`](super::render::email); an [`EmailSender`] hands it to Microsoft Graph
//! `sendMail` (the application's mailbox) or an SMTP server.
//!
//! Not wired yet: no sender is configured, so deliveries to email channels fail transiently
//! ("email is not configured") and end in the poison queue, visible in the delivery log.

use async_trait::async_trait;

use crate::domain::notifications::SendOutcome;

/// One email to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Derived from the delivery, so a re-sent copy carries the same `Message-ID` and mail clients
    /// fold it into the first.
    pub message_id: String,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends the email; a refused mailbox is [`SendOutcome::Permanent`].
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome;
}
