//! CSV for spreadsheets: the candidate export and the label upload, with the same
//! all-or-nothing validation as JSON and row numbers in errors.

use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use serde_json::json;

async fn csv_labels_round_trip_through_the_export(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .create_campaign(
            json!({"name": "csv", "space": {"type": "grid", "dims": 2, "size": 5},
                                "training": {"steps": 5, "batch_size": 4}, "model": {"hidden": 8}}),
        )
        .await;
    let (_, round) = app.round(json!({"campaign_id": id, "batch_size": 2})).await;
    let first = round["candidates"][0]["id"].as_i64().expect("id");
    let upload = format!(
        "candidate_id,value,reward,failed,error,key\n{first},,1.5,,,k1\n,\"[4, 4]\",2.5,false,,k2\n,\"[0,4]\",,true,\"pump, clogged\",k3\n"
    );
    let (status, outcome) = app
        .post_raw(
            &format!("/labels?campaign_id={id}"),
            "text/csv",
            upload.clone(),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({"accepted": 3, "duplicates": 0}));
    let (status, again) = app
        .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", upload)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, json!({"accepted": 0, "duplicates": 3}));

    let resp = app
        .client
        .get(app.url(&format!(
            "/campaigns/{id}/candidates?format=csv&order=reward"
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let text = resp.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        vec![
            "id",
            "value",
            "round",
            "status",
            "mean_reward",
            "observations",
            "source",
            "entity"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(&rows[0][1], "[4,4]", "best first");
    assert_eq!(&rows[0][2], "", "imported: no round");
    assert_eq!(
        (&rows[0][3], &rows[0][4], &rows[0][5]),
        ("labelled", "2.5", "1")
    );
    assert_eq!(&rows[0][6], "imported", "a value first seen in a label");
    assert_eq!(&rows[1][0], first.to_string().as_str());
    assert_eq!(&rows[1][2], "1");
    assert_eq!(
        &rows[1][6], "uniform",
        "round 1 draws from the uniform policy"
    );
    assert_eq!(&rows[1][6], round["candidates"][0]["source"]);
    let failed = rows.iter().find(|r| &r[1] == "[0,4]").expect("failed row");
    assert_eq!((&failed[3], &failed[4]), ("failed", ""));
    assert_eq!(&failed[6], "imported");
}
on_both_backends!(
    csv_labels_round_trip_through_the_export,
    csv_labels_round_trip_through_the_export
);

async fn a_bad_csv_row_is_named_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .create_campaign(json!({"name": "csv", "space": {"type": "grid", "dims": 2, "size": 5}}))
        .await;
    let cases = [
        ("value,reward\n\"[1,1]\",1\n\"[1,9]\",2\n", "row 3"),
        ("value,reward\n\"[1,1]\",1\n\"[2,2]\",lots\n", "row 3"),
        ("value,reward\n\"[1,1]\",1\n\"[2,2]\",NaN\n", "row 3"),
        ("value,reward,failed\n\"[1,1]\",1,maybe\n", "row 2"),
    ];
    for (body, row) in cases {
        let (status, err) = app
            .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", body)
            .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_error(&err, "invalid_item");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains(row), "{message} should name {row}");
    }
    let (status, err) = app
        .post_raw(
            &format!("/labels?campaign_id={id}"),
            "text/csv",
            "value,score\n\"[1,1]\",1\n",
        )
        .await;
    assert_eq!(status, 400);
    assert_error(&err, "invalid_value");
    let (_, page) = app.get(&format!("/campaigns/{id}/candidates")).await;
    assert_eq!(page["candidates"], json!([]), "nothing stored");
}
on_both_backends!(
    a_bad_csv_row_is_named_and_nothing_is_stored,
    a_bad_csv_row_is_named_and_nothing_is_stored
);
