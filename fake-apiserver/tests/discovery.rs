//! Discovery of an optional API group: a group/version nobody registered is a 404, as on a real
//! server; registering the Prometheus operator's kinds makes discovery list them.

use fake_apiserver::{monitoring_defs, FakeApiServer};

#[tokio::test]
async fn an_unregistered_group_is_not_found_until_its_kinds_are_registered() -> anyhow::Result<()> {
    let server = FakeApiServer::start().await?;
    let client = server.client()?;
    match client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    for def in monitoring_defs() {
        server.register(def);
    }
    let list = client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await?;
    let mut names: Vec<String> = list.resources.into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, ["podmonitors", "prometheusrules", "servicemonitors"]);
    Ok(())
}
