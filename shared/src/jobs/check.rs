//! Check: can ferry reach this database and this bucket with the given settings?
//!
//! The first thing to run from a new Lambda, VPC or CI runner: it connects the way every job
//! connects (TLS mode, pooler to direct host, retries) and does a full round trip through the
//! object store (write, head, read back, list, delete) with a small probe object.

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::{
    pg::connect,
    progress::{ProgressEvent, Unit},
    store::{ObjectUrl, Store},
};

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckInput {
    /// A PostgreSQL URL or Secrets Manager reference to connect to.
    #[serde(default)]
    pub source: Option<String>,
    /// An object-store prefix to write a probe object under.
    #[serde(default)]
    pub store: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PgCheck {
    /// Where ferry connected (user, host, port, database; never the password).
    pub target: String,
    /// Whether a Neon pooler host was replaced by the direct host.
    pub pooler_avoided: bool,
    pub server_version: String,
    pub server_version_num: u32,
    pub tls: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCheck {
    /// The probe object written, read back and deleted.
    pub probe: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    pub postgres: Option<PgCheck>,
    pub store: Option<StoreCheck>,
}

const PROBE_BYTES: usize = 4096;

pub async fn check(input: CheckInput, ctx: Context) -> Result<CheckOutput, JobError> {
    if input.source.is_none() && input.store.is_none() {
        return Err(JobError::BadInput(
            "nothing to check: give a database, a store location, or both".into(),
        ));
    }
    let step = |step: &str, done: u64| {
        ctx.progress.report(ProgressEvent {
            job: "check",
            step: step.to_string(),
            done,
            total: Some(2),
            unit: Unit::Steps,
        })
    };
    let postgres = match &input.source {
        None => None,
        Some(source) => {
            step("connecting to PostgreSQL", 0);
            let given = super::database(source).await?;
            let config = given.direct();
            let session = connect(&config).await?;
            let row = session
                .query_one(
                    "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, \
                     coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                    &[],
                )
                .await
                .map_err(crate::pg::PgError::from)?;
            Some(PgCheck {
                target: config.target(),
                pooler_avoided: given.is_pooler(),
                server_version: row.get(0),
                server_version_num: row.get::<_, i32>(1) as u32,
                tls: row.get(2),
            })
        }
    };
    let store = match &input.store {
        None => None,
        Some(location) => {
            step("round trip through the object store", 1);
            let url = ObjectUrl::parse(location)?;
            let store = Store::for_url(&url, &ctx.store).await?;
            let key = url
                .key
                .join(&format!(".ferry-check-{}", uuid::Uuid::new_v4()))?;
            let probe: Bytes = (0..PROBE_BYTES)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();
            let result = async {
                store.put(&key, probe.clone()).await?;
                let head = store.head(&key).await?;
                let back = store.get_bytes(&key).await?;
                let listed = store.list(&key).await?;
                if head.size != PROBE_BYTES as u64
                    || back != probe
                    || !listed.iter().any(|m| m.key == key)
                {
                    return Err(JobError::Store(crate::store::StoreError::Aborted {
                        location: store.url(&key).to_string(),
                        reason: "the probe object did not read back as written".into(),
                    }));
                }
                Ok(())
            }
            .await;
            store.delete(&key).await?;
            result?;
            Some(StoreCheck {
                probe: store.url(&key).to_string(),
                bytes: PROBE_BYTES as u64,
            })
        }
    };
    step("done", 2);
    Ok(CheckOutput { postgres, store })
}
