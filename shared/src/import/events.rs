//! The shapes in which S3 announces an upload: an S3 event notification (delivered to the Lambda
//! directly, or as the body of an SQS message, possibly wrapped in an SNS notification) and an
//! EventBridge `Object Created` event (directly or through SQS).
//!
//! Keys in S3 event notifications are URL-encoded (`+` for a space, `%XX` for other bytes);
//! EventBridge carries the key as written, which is tried first, then decoded.

use aws_lambda_events::{eventbridge::EventBridgeEvent, s3::S3EventRecord, sqs::SqsMessage};
use serde::Deserialize;
use serde_json::Value;

/// Why an event (or one message of a batch) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadEvent(String);

/// One uploaded object an event announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub bucket: String,
    /// The key to read (decoded).
    pub key: String,
    /// Another spelling to try when `key` does not exist (EventBridge keys, decoded).
    pub alternative_key: Option<String>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub size: Option<u64>,
}

/// One unit of delivery: an SQS message (with its id, for partial batch failures) or one record
/// of a direct notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: Option<String>,
    /// The uploads it announces, or why it cannot be read. Test events and events that are not
    /// object creations announce none.
    pub uploads: Result<Vec<Upload>, BadEvent>,
}

/// Decodes an S3 event key (`application/x-www-form-urlencoded`).
pub fn decode_key(key: &str) -> Result<String, BadEvent> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| BadEvent(format!("the event's key {key:?} does not decode to UTF-8")))
}

/// The `detail` of S3's EventBridge `Object Created` event (aws_lambda_events leaves the
/// detail to the caller).
#[derive(Debug, Deserialize)]
struct ObjectCreated {
    bucket: Named,
    object: CreatedObject,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize)]
struct CreatedObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
}

/// The part of an SNS notification (as SNS delivers it to SQS) that carries the S3 event: SNS
/// FIFO topics leave out the signature fields that aws_lambda_events' `SnsMessage` requires.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsEnvelope {
    message: String,
}

/// S3's test message, sent when a notification is configured (not an upload).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TestEvent {
    event: String,
}

/// Whether a JSON value is one of the event shapes (rather than a direct request).
pub fn is_event(v: &Value) -> bool {
    v.get("Records").is_some() || (v.get("detail-type").is_some() && v.get("detail").is_some())
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, BadEvent> {
    T::deserialize(v).map_err(|e| BadEvent(format!("not a valid {what}: {e}")))
}

/// The deliveries of a Lambda event.
pub fn parse(event: &Value) -> Result<Vec<Delivery>, BadEvent> {
    if let Some(records) = event.get("Records") {
        let records = records
            .as_array()
            .ok_or_else(|| BadEvent("the event's Records is not a list".into()))?;
        // Each record on its own: one that cannot be read fails its own delivery only.
        return Ok(records
            .iter()
            .map(|r| {
                if r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
                    || r.get("messageId").is_some()
                {
                    Delivery {
                        message_id: r
                            .get("messageId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        uploads: sqs_message(r),
                    }
                } else {
                    Delivery {
                        message_id: None,
                        uploads: s3_record(r).map(|u| u.into_iter().collect()),
                    }
                }
            })
            .collect());
    }
    if event.get("detail-type").is_some() {
        return Ok(vec![Delivery {
            message_id: None,
            uploads: eventbridge(event).map(|u| u.into_iter().collect()),
        }]);
    }
    Err(BadEvent(
        "not an S3 event notification, an EventBridge event or an SQS batch".into(),
    ))
}

/// The uploads an SQS message of a batch announces.
fn sqs_message(r: &Value) -> Result<Vec<Upload>, BadEvent> {
    let message: SqsMessage = decode(r, "SQS message")?;
    let body = message
        .body
        .ok_or_else(|| BadEvent("an SQS message without a body".into()))?;
    sqs_body(&body)
}

/// One record of an S3 event notification (`None` for events other than object creation,
/// which are not read further).
fn s3_record(r: &Value) -> Result<Option<Upload>, BadEvent> {
    let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
    if !name.starts_with("ObjectCreated:") && !name.starts_with("s3:ObjectCreated:") {
        return Ok(None);
    }
    let r: S3EventRecord = decode(r, "S3 event record")?;
    let bucket =
        r.s3.bucket
            .name
            .ok_or_else(|| BadEvent("an S3 record without s3.bucket.name".into()))?;
    let object = r.s3.object;
    let raw = object
        .key
        .ok_or_else(|| BadEvent("an S3 record without s3.object.key".into()))?;
    Ok(Some(Upload {
        bucket,
        key: decode_key(&raw)?,
        alternative_key: None,
        etag: object.e_tag.map(|e| e.trim_matches('"').to_string()),
        version_id: object.version_id.filter(|v| !v.is_empty() && v != "null"),
        size: object.size.and_then(|s| u64::try_from(s).ok()),
    }))
}

/// An EventBridge event (`None` unless it is S3's `Object Created`).
fn eventbridge(e: &Value) -> Result<Option<Upload>, BadEvent> {
    let event: EventBridgeEvent<Value> = decode(e, "EventBridge event")?;
    if event.source != "aws.s3" || event.detail_type != "Object Created" {
        return Ok(None);
    }
    let detail: ObjectCreated = decode(&event.detail, "S3 Object Created detail")?;
    let key = detail.object.key;
    let decoded = decode_key(&key).ok().filter(|d| *d != key);
    Ok(Some(Upload {
        bucket: detail.bucket.name,
        key,
        alternative_key: decoded,
        etag: detail.object.etag.map(|t| t.trim_matches('"').to_string()),
        version_id: detail.object.version_id.filter(|v| !v.is_empty()),
        size: detail.object.size,
    }))
}

/// The uploads an SQS message's body announces.
fn sqs_body(body: &str) -> Result<Vec<Upload>, BadEvent> {
    let mut inner: Value = serde_json::from_str(body)
        .map_err(|e| BadEvent(format!("the SQS message body is not JSON: {e}")))?;
    // An SNS notification carries the S3 event as its Message.
    if inner.get("Type").and_then(Value::as_str) == Some("Notification") {
        let sns: SnsEnvelope = decode(&inner, "SNS notification")?;
        inner = serde_json::from_str(&sns.message)
            .map_err(|e| BadEvent(format!("the SNS message in the SQS body is not JSON: {e}")))?;
    }
    if inner.get("Event").is_some()
        && decode::<TestEvent>(&inner, "S3 test event")?.event == "s3:TestEvent"
    {
        return Ok(Vec::new());
    }
    if let Some(records) = inner.get("Records") {
        let records = records
            .as_array()
            .ok_or_else(|| BadEvent("the S3 notification's Records is not a list".into()))?;
        let mut out = Vec::new();
        for record in records {
            out.extend(s3_record(record)?);
        }
        return Ok(out);
    }
    if inner.get("detail-type").is_some() {
        return Ok(eventbridge(&inner)?.into_iter().collect());
    }
    Err(BadEvent(
        "the SQS message body is neither an S3 event notification nor an EventBridge event".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn direct_notification_keys_are_decoded() {
        let d = parse(&fixture("s3-put")).unwrap();
        let u = &d[0].uploads.as_ref().unwrap()[0];
        assert_eq!(u.bucket, "amzn-s3-demo-bucket");
        assert_eq!(u.key, "imports/public.t/my file+1é.csv");
        assert_eq!(
            (u.etag.as_deref(), u.size, u.version_id.as_deref()),
            (
                Some("0123456789abcdef0123456789abcdef"),
                Some(12),
                Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
            )
        );
    }

    #[test]
    fn sqs_batches_keep_message_ids_and_bad_bodies_fail_alone() {
        let d = parse(&fixture("sqs-batch")).unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(
            d[0].uploads.as_ref().unwrap()[0].key,
            "imports/public.t/my file+1é.csv"
        );
        assert!(d[1].uploads.is_err());
        assert_eq!(d[1].message_id.as_deref(), Some("m2"));
        let u = &d[2].uploads.as_ref().unwrap()[0];
        assert_eq!(
            (u.key.as_str(), u.alternative_key.as_deref()),
            ("imports/public.t/b c.csv", None)
        );
        assert_eq!(
            u.version_id.as_deref(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
        );
        // An SNS notification wrapping the S3 notification.
        assert_eq!(d[3].uploads.as_ref().unwrap().len(), 1);
        // S3's test event announces nothing.
        assert!(d[4].uploads.as_ref().unwrap().is_empty());
    }

    #[test]
    fn eventbridge_events_come_as_written() {
        let d = parse(&fixture("eventbridge-object-created")).unwrap();
        let u = &d[0].uploads.as_ref().unwrap()[0];
        assert_eq!(
            (u.key.as_str(), u.size),
            ("imports/public.t/b c.csv", Some(3))
        );
    }

    #[test]
    fn other_events_announce_nothing() {
        let d = parse(&fixture("s3-removed")).unwrap();
        assert!(d[0].uploads.as_ref().unwrap().is_empty());
        assert!(parse(&serde_json::json!({"hello":1})).is_err());
        // An SNS FIFO envelope has no signature fields.
        let s3 = fixture("s3-put").to_string();
        let fifo = serde_json::json!({"Type": "Notification", "MessageId": "m",
            "SequenceNumber": "10000000000000003000", "TopicArn": "arn:aws:sns:us-east-1:123456789012:u.fifo",
            "Message": s3, "Timestamp": "2026-11-25T10:00:01.000Z", "UnsubscribeURL": "https://sns"});
        assert_eq!(sqs_body(&fifo.to_string()).unwrap().len(), 1);
        // A record missing what S3 always sends is refused, not half read, and alone: the
        // other records of the event are read.
        let mut broken = fixture("s3-put");
        let good = broken["Records"][0].clone();
        broken["Records"][0]["s3"]["bucket"] = serde_json::json!(7);
        broken["Records"].as_array_mut().unwrap().push(good);
        let d = parse(&broken).unwrap();
        assert!(d[0].uploads.is_err());
        assert_eq!(d[1].uploads.as_ref().unwrap().len(), 1);
    }
}
