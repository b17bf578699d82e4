//! An admin API client for the admin API tests: a real admin token, JSON in and out, and a
//! check that every error has the one shape (`error` and `request_id`).

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{read, test_actor, Res, TestApp};

pub struct AdminApi {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl AdminApi {
    pub async fn new(app: &TestApp) -> AdminApi {
        let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
            .await
            .unwrap();
        crate::log_scan::register_secret(&token);
        AdminApi {
            base: format!("{}/api/v1", app.address),
            token,
            client: app.client.clone(),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Res {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = read(req.send().await.expect("request")).await;
        if res.status.is_client_error() || res.status.is_server_error() {
            assert_error_shape(&res);
        }
        res
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Res {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Res {
        self.send(Method::POST, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.send(Method::DELETE, path, None).await
    }
}

/// `{"error": "…", "request_id": "…"}`, the request id being the response's `x-request-id`.
pub fn assert_error_shape(res: &Res) {
    let message = res.body["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no error message: {}", res.body);
    let id = res.body["request_id"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "no request_id: {}", res.body);
    if let Some(header) = res.header("x-request-id") {
        assert_eq!(header, id, "{}", res.body);
    }
}

/// Assert a status, showing the body when it differs.
#[track_caller]
pub fn expect(res: &Res, status: u16) {
    assert_eq!(res.status.as_u16(), status, "{}", res.body);
}
