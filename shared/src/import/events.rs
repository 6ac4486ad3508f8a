//! The shapes in which S3 announces an upload: an S3 event notification (delivered to the Lambda
//! directly, or as the body of an SQS message, possibly wrapped in an SNS notification) and an
//! EventBridge `Object Created` event (directly or through SQS).
//!
//! Keys in S3 event notifications are URL-encoded (`+` for a space, `%XX` for other bytes);
//! EventBridge carries the key as written, which is tried first, then decoded.

use serde_json::Value;

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
    pub uploads: Result<Vec<Upload>, String>,
}

/// Decodes an S3 event key (`application/x-www-form-urlencoded`).
pub fn decode_key(key: &str) -> Result<String, String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("the event's key {key:?} does not decode to UTF-8"))
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value, path: &[&str]) -> Option<u64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Whether a JSON value is one of the event shapes (rather than a direct request).
pub fn is_event(v: &Value) -> bool {
    v.get("Records").is_some() || (v.get("detail-type").is_some() && v.get("detail").is_some())
}

/// The deliveries of a Lambda event.
pub fn parse(event: &Value) -> Result<Vec<Delivery>, String> {
    if let Some(records) = event.get("Records") {
        let records = records
            .as_array()
            .ok_or("the event's Records is not a list")?;
        return Ok(records
            .iter()
            .map(|r| {
                if r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
                    || r.get("messageId").is_some()
                {
                    Delivery {
                        message_id: text(r, &["messageId"]),
                        uploads: sqs_body(r),
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
    Err("not an S3 event notification, an EventBridge event or an SQS batch".into())
}

/// One record of an S3 event notification (`None` for events other than object creation).
fn s3_record(r: &Value) -> Result<Option<Upload>, String> {
    let name = text(r, &["eventName"]).unwrap_or_default();
    if !name.starts_with("ObjectCreated:") && !name.starts_with("s3:ObjectCreated:") {
        return Ok(None);
    }
    let bucket = text(r, &["s3", "bucket", "name"]).ok_or("an S3 record without s3.bucket.name")?;
    let raw = text(r, &["s3", "object", "key"]).ok_or("an S3 record without s3.object.key")?;
    Ok(Some(Upload {
        bucket,
        key: decode_key(&raw)?,
        alternative_key: None,
        etag: text(r, &["s3", "object", "eTag"]).map(|e| e.trim_matches('"').to_string()),
        version_id: text(r, &["s3", "object", "versionId"])
            .filter(|v| !v.is_empty() && v != "null"),
        size: number(r, &["s3", "object", "size"]),
    }))
}

/// An EventBridge event (`None` unless it is S3's `Object Created`).
fn eventbridge(e: &Value) -> Result<Option<Upload>, String> {
    if text(e, &["source"]).as_deref() != Some("aws.s3")
        || text(e, &["detail-type"]).as_deref() != Some("Object Created")
    {
        return Ok(None);
    }
    let bucket = text(e, &["detail", "bucket", "name"])
        .ok_or("an EventBridge event without detail.bucket.name")?;
    let key = text(e, &["detail", "object", "key"])
        .ok_or("an EventBridge event without detail.object.key")?;
    let decoded = decode_key(&key).ok().filter(|d| *d != key);
    Ok(Some(Upload {
        bucket,
        key,
        alternative_key: decoded,
        etag: text(e, &["detail", "object", "etag"]).map(|t| t.trim_matches('"').to_string()),
        version_id: text(e, &["detail", "object", "version-id"]).filter(|v| !v.is_empty()),
        size: number(e, &["detail", "object", "size"]),
    }))
}

/// The uploads an SQS message's body announces.
fn sqs_body(r: &Value) -> Result<Vec<Upload>, String> {
    let body = r
        .get("body")
        .and_then(Value::as_str)
        .ok_or("an SQS message without a body")?;
    let mut inner: Value =
        serde_json::from_str(body).map_err(|e| format!("the SQS message body is not JSON: {e}"))?;
    // An SNS notification carries the S3 event as its Message.
    if inner.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = inner.get("Message").and_then(Value::as_str)
    {
        inner = serde_json::from_str(message)
            .map_err(|e| format!("the SNS message in the SQS body is not JSON: {e}"))?;
    }
    if inner.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    if let Some(records) = inner.get("Records").and_then(Value::as_array) {
        let mut out = Vec::new();
        for record in records {
            out.extend(s3_record(record)?);
        }
        return Ok(out);
    }
    if inner.get("detail-type").is_some() {
        return Ok(eventbridge(&inner)?.into_iter().collect());
    }
    Err("the SQS message body is neither an S3 event notification nor an EventBridge event".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str) -> Value {
        json!({"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
               "eventName":"ObjectCreated:Put",
               "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"b","arn":"arn:aws:s3:::b"},
                     "object":{"key":key,"size":12,"eTag":"0123abcd","sequencer":"0A1B"}}})
    }

    #[test]
    fn direct_notification_keys_are_decoded() {
        let event = json!({"Records":[s3_event("imports/public.t/my+file%2B1%C3%A9.csv")]});
        let d = parse(&event).unwrap();
        let u = &d[0].uploads.as_ref().unwrap()[0];
        assert_eq!(u.key, "imports/public.t/my file+1é.csv");
        assert_eq!((u.etag.as_deref(), u.size), (Some("0123abcd"), Some(12)));
    }

    #[test]
    fn sqs_batches_keep_message_ids_and_bad_bodies_fail_alone() {
        let good = json!({"Records":[s3_event("imports/public.t/a.csv")]}).to_string();
        let eb = json!({"version":"0","detail-type":"Object Created","source":"aws.s3",
                        "detail":{"bucket":{"name":"b"},"object":{"key":"imports/public.t/b c.csv","size":3,"etag":"e"}}});
        let sns = json!({"Type":"Notification","Message":good.clone()}).to_string();
        let event = json!({"Records":[
            {"messageId":"m1","eventSource":"aws:sqs","body":good},
            {"messageId":"m2","eventSource":"aws:sqs","body":"{not json"},
            {"messageId":"m3","eventSource":"aws:sqs","body":eb.to_string()},
            {"messageId":"m4","eventSource":"aws:sqs","body":sns},
            {"messageId":"m5","eventSource":"aws:sqs","body":"{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\"}"},
        ]});
        let d = parse(&event).unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(
            d[0].uploads.as_ref().unwrap()[0].key,
            "imports/public.t/a.csv"
        );
        assert!(d[1].uploads.is_err());
        let u = &d[2].uploads.as_ref().unwrap()[0];
        assert_eq!(
            (u.key.as_str(), u.alternative_key.as_deref()),
            ("imports/public.t/b c.csv", None)
        );
        assert_eq!(d[3].uploads.as_ref().unwrap().len(), 1);
        assert!(d[4].uploads.as_ref().unwrap().is_empty());
        assert_eq!(d[1].message_id.as_deref(), Some("m2"));
    }

    #[test]
    fn other_events_announce_nothing() {
        let mut removed = s3_event("a.csv");
        removed["eventName"] = json!("ObjectRemoved:Delete");
        let d = parse(&json!({"Records":[removed]})).unwrap();
        assert!(d[0].uploads.as_ref().unwrap().is_empty());
        assert!(parse(&json!({"hello":1})).is_err());
    }
}
