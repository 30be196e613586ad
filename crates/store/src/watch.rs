//! The watcher's watermark: where it left off asking the IdP for changed users, kept so
//! that a restart resumes there.

use chrono::{DateTime, Utc};

use crate::write::format_time;
use crate::{Store, StoreError};

impl Store {
    /// The watermark last stored for `source`, if any.
    ///
    /// # Errors
    /// [`StoreError::Query`] if reading fails, [`StoreError::Corrupt`] if the time cannot
    /// be read back.
    pub async fn watch_watermark(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT watermark FROM watch_state WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.query("read the watch watermark"))?;
        text.map(|text| self.parse_time(&text, "watermark", || format!("watch state of {source}")))
            .transpose()
    }

    /// Stores `watermark` as where the watcher of `source` left off.
    ///
    /// # Errors
    /// [`StoreError::Query`] (or [`StoreError::Disk`]) if the write fails.
    pub async fn set_watch_watermark(
        &self,
        source: &str,
        watermark: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO watch_state (source, watermark) VALUES (?, ?) \
             ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark",
        )
        .bind(source)
        .bind(format_time(watermark))
        .execute(&self.pool)
        .await
        .map_err(self.query("store the watch watermark"))?;
        Ok(())
    }
}
