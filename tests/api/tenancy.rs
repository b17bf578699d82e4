//! Every partner sees only its own people; another partner's resource does not exist for it.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn, Backend};
use crate::users_crud::clinician;

both_backends!(partners_are_isolated_from_each_other);

async fn partners_are_isolated_from_each_other(backend: Backend) {
    let app = spawn(backend).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let ann = acme.create_user(&clinician("ann@shared.example")).await;
    // The same userName is fine in another partner.
    let other = globex.create_user(&clinician("ann@shared.example")).await;
    assert_ne!(ann, other);

    let path = format!("/Users/{ann}");
    globex.get(&path).await.assert_scim_error(404, None);
    globex
        .put(&path, &clinician("x@globex.example"))
        .await
        .assert_scim_error(404, None);
    globex
        .patch(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await
        .assert_scim_error(404, None);
    globex.delete(&path).await.assert_scim_error(404, None);

    let list = globex
        .filter_users("userName eq \"ann@shared.example\"")
        .await;
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(list.body["Resources"][0]["id"], other.as_str());
    let by_id = globex.filter_users(&format!("id eq \"{ann}\"")).await;
    assert_eq!(by_id.body["totalResults"], 0);
    let by_email = globex
        .filter_users("emails.value eq \"ann@shared.example\"")
        .await;
    assert_eq!(by_email.body["totalResults"], 1);

    // Acme's user is untouched.
    let mine = acme.get(&path).await;
    assert_eq!(mine.body["active"], true);
    assert_eq!(mine.body["meta"]["version"], "W/\"1\"");
}
