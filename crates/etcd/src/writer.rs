//! Writing under the prefix a reflector mirrors.

use etcd_client::{Client, PutOptions};

/// Writes values under a key prefix: what an API puts into etcd, for the
/// reflectors of every instance to mirror. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Writer {
    /// A writer of keys under `prefix`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Writer {
            client,
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sets `prefix + key` to `value`; durable in etcd when this returns.
    /// Returns the revision of the write.
    ///
    /// # Errors
    ///
    /// The etcd request failed (unreachable, no quorum…).
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<i64, etcd_client::Error> {
        let mut client = self.client.clone();
        let resp = client
            .put(
                format!("{}{key}", self.prefix),
                value,
                Some(PutOptions::new()),
            )
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Deletes `prefix + key`. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// The etcd request failed.
    pub async fn delete(&self, key: &str) -> Result<bool, etcd_client::Error> {
        let mut client = self.client.clone();
        let resp = client.delete(format!("{}{key}", self.prefix), None).await?;
        Ok(resp.deleted() > 0)
    }
}
