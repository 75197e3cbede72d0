//! Candidate pages after a cursor (`after`, `next` and the `x-next-cursor` header): a walk
//! page by page lists what one big page lists, and cursors of another listing are refused.

use crate::helpers::{assert_error, Backend, TestApp};
use crate::on_both_backends;
use serde_json::{json, Value};

/// A campaign over short sequences with sixteen imported values: rewards 1, 2 and 3 (so
/// means tie), every fifth one failed (unmeasured), some sharing an entity. Its id.
async fn campaign_with_ties(app: &TestApp, maximize: bool) -> i64 {
    let id = app
        .create_campaign(json!({"name": "pages", "space": {"type": "sequence",
            "alphabet": ["A", "C", "G", "T"], "min_length": 2, "max_length": 4},
            "reward": {"maximize": maximize}, "model": {"hidden": 8},
            "training": {"steps": 5, "batch_size": 4}}))
        .await;
    let letters = ["A", "C", "G", "T"];
    let labels: Vec<Value> = (0..16)
        .map(|i| {
            let value = format!("{}{}", letters[i / 4], letters[i % 4]);
            let entity = (i % 4 == 0).then(|| format!("m{}", i % 3));
            if i % 5 == 4 {
                json!({"campaign_id": id, "value": value, "failed": true, "entity": entity})
            } else {
                let reward = [1.0, 2.0, 3.0][i % 3];
                json!({"campaign_id": id, "value": value, "reward": reward, "entity": entity})
            }
        })
        .collect();
    let (status, outcome) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{outcome}");
    id
}

/// The ids of a JSON page's rows and its `next`.
async fn json_page(app: &TestApp, id: i64, query: &str) -> (Vec<i64>, Value) {
    let (status, page) = app
        .get(&format!("/campaigns/{id}/candidates?{query}"))
        .await;
    assert_eq!(status, 200, "{query}: {page}");
    let ids = page["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["id"].as_i64().expect("an id"))
        .collect();
    (ids, page["next"].clone())
}

/// The ids of a CSV page's rows and its `x-next-cursor` header.
async fn csv_page(app: &TestApp, id: i64, query: &str) -> (Vec<i64>, Option<String>) {
    let response = app
        .client
        .get(app.url(&format!("/campaigns/{id}/candidates?format=csv&{query}")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{query}");
    let next = response
        .headers()
        .get("x-next-cursor")
        .map(|v| v.to_str().expect("ascii").to_string());
    let text = response.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let ids = reader
        .records()
        .map(|r| r.expect("a row")[0].parse::<i64>().expect("an id"))
        .collect();
    (ids, next)
}

async fn cursor_pages_walk_the_listing_as_one_page_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for maximize in [true, false] {
        let id = campaign_with_ties(&app, maximize).await;
        for listing in [
            "order=created",
            "order=reward",
            "order=reward&status=labelled",
            "order=reward&distinct=entity",
            "order=created&distinct=entity",
        ] {
            let (whole, next) = json_page(&app, id, &format!("{listing}&limit=1000")).await;
            assert!(whole.len() > 5, "{listing}: {whole:?}");
            assert_eq!(next, Value::Null, "{listing}: nothing follows");
            // A page that ends exactly at the last row is the last: it says so.
            let limit = whole.len();
            let (_, next) = json_page(&app, id, &format!("{listing}&limit={limit}")).await;
            assert_eq!(next, Value::Null, "{listing}");

            let (mut walked, mut next) = json_page(&app, id, &format!("{listing}&limit=3")).await;
            let mut pages = 1;
            while let Some(cursor) = next.as_str() {
                let (ids, after) =
                    json_page(&app, id, &format!("{listing}&limit=3&after={cursor}")).await;
                assert!(
                    !ids.is_empty(),
                    "{listing}: a cursor is given only when rows follow"
                );
                walked.extend(ids);
                next = after;
                pages += 1;
                assert!(
                    walked.len() <= whole.len(),
                    "{listing}: rows repeat: {walked:?}"
                );
            }
            assert_eq!(walked, whole, "{listing}");
            assert_eq!(pages, whole.len().div_ceil(3), "{listing}");

            // An offset page gives the cursor of its last row too.
            let (_, next) = json_page(&app, id, &format!("{listing}&limit=2&offset=3")).await;
            let cursor = next.as_str().expect("rows follow");
            let (ids, _) = json_page(&app, id, &format!("{listing}&limit=2&after={cursor}")).await;
            assert_eq!(ids, whole[5..7], "{listing}");

            // CSV carries the cursor in a header, absent on the last page.
            let (mut walked, mut next) = csv_page(&app, id, &format!("{listing}&limit=4")).await;
            while let Some(cursor) = next {
                let (ids, after) =
                    csv_page(&app, id, &format!("{listing}&limit=4&after={cursor}")).await;
                walked.extend(ids);
                next = after;
                assert!(
                    walked.len() <= whole.len(),
                    "{listing}: rows repeat: {walked:?}"
                );
            }
            assert_eq!(walked, whole, "{listing} as CSV");
        }
        // No rows, no cursor: there is no row to continue after.
        let (ids, next) = json_page(&app, id, "order=reward&limit=0").await;
        assert_eq!((ids.len(), next), (0, Value::Null));
    }
}
on_both_backends!(
    cursor_pages_walk_the_listing_as_one_page_does,
    cursor_pages_walk_the_listing_as_one_page_does
);

/// Asserts that the page of `query` is 400 `invalid_value` naming `after`.
async fn refused(app: &TestApp, id: i64, query: &str) {
    let (status, err) = app
        .get(&format!("/campaigns/{id}/candidates?{query}"))
        .await;
    assert_eq!(status, 400, "{query}: {err}");
    assert_error(&err, "invalid_value");
    assert_eq!(err["error"]["details"]["field"], "after", "{query}: {err}");
}

/// The `next` of the first page of two rows of a listing.
async fn cursor_of(app: &TestApp, id: i64, listing: &str) -> String {
    let (_, next) = json_page(app, id, &format!("{listing}&limit=2")).await;
    next.as_str().expect("rows follow").to_string()
}

async fn cursors_of_another_listing_are_refused_naming_after(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = campaign_with_ties(&app, true).await;
    for malformed in [
        "",
        "x",
        "c.c.any.-1",
        "r.c.any.12.3",
        "r.c.any.7ff8000000000000.3",
    ] {
        refused(&app, id, &format!("after={malformed}")).await;
    }
    let by_reward = cursor_of(&app, id, "order=reward").await;
    let by_creation = cursor_of(&app, id, "order=created").await;
    let labelled = cursor_of(&app, id, "order=reward&status=labelled").await;
    let objects = cursor_of(&app, id, "order=reward&distinct=entity").await;
    for query in [
        format!("order=created&after={by_reward}"),
        format!("order=reward&after={by_creation}"),
        format!("order=reward&after={labelled}"),
        format!("order=reward&status=failed&after={labelled}"),
        format!("order=reward&after={objects}"),
        format!("order=reward&distinct=entity&after={by_reward}"),
        format!("order=reward&offset=2&after={by_reward}"),
    ] {
        refused(&app, id, &query).await;
    }
    // Each in its own listing, and with an offset of 0, it is a page.
    for query in [
        format!("order=reward&after={by_reward}&offset=0"),
        format!("after={by_creation}"),
        format!("order=reward&status=labelled&after={labelled}"),
        format!("order=reward&distinct=entity&after={objects}"),
    ] {
        let (status, _) = app
            .get(&format!("/campaigns/{id}/candidates?{query}"))
            .await;
        assert_eq!(status, 200, "{query}");
    }
}
on_both_backends!(
    cursors_of_another_listing_are_refused_naming_after,
    cursors_of_another_listing_are_refused_naming_after
);
