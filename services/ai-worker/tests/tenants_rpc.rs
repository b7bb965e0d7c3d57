//! The `Tenants` service: what the gateway calls to provision a tenant's worker side and to
//! read and set its quotas, with its errors as status codes (field named in INVALID_ARGUMENT,
//! NOT_FOUND, ALREADY_EXISTS), behind the internal token, and reported by the health service.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, spawn_worker_with, worker_config};
use tonic::{Code, Request, transport::Channel};
use tonic_reflection::pb::v1 as pb_reflection;
use uuid::Uuid;

const TOKEN: &str = "tenants-rpc-internal-token";

fn authorised<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

fn create(id: &str, name: &str) -> Request<pb::CreateTenantRequest> {
    authorised(pb::CreateTenantRequest {
        tenant_id: id.to_owned(),
        name: name.to_owned(),
    })
}

fn quotas(id: Uuid, quotas: pb::TenantQuotas) -> Request<pb::SetTenantQuotasRequest> {
    authorised(pb::SetTenantQuotasRequest {
        tenant_id: id.to_string(),
        quotas: Some(quotas),
    })
}

fn read(id: Uuid) -> Request<pb::GetTenantQuotasRequest> {
    authorised(pb::GetTenantQuotasRequest {
        tenant_id: id.to_string(),
    })
}

/// The call failed with `code` and a message that mentions `mentions`.
fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    mentions: &str,
) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(mentions), "{}", status.message());
}

#[tokio::test]
async fn tenants_are_provisioned_idempotently_and_their_quotas_read_and_set_with_status_codes() {
    let db = TestDatabase::create().await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.internal_token = Some(TOKEN.into());
    config.insecure_no_internal_token = false;
    let worker = spawn_worker_with(config).await;
    let channel = Channel::from_shared(worker.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tenants = pb::tenants_client::TenantsClient::new(channel.clone());

    // Served and reported like the AiWorker service.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "thinkbank.v1.Tenants".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        health.get_ref().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Listed by server reflection, so grpcurl users find it.
    let list = pb_reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            pb_reflection::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses =
        pb_reflection::server_reflection_client::ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::once(list))
            .await
            .unwrap()
            .into_inner();
    let listed = responses.message().await.unwrap().unwrap().message_response;
    let Some(pb_reflection::server_reflection_response::MessageResponse::ListServicesResponse(
        listed,
    )) = listed
    else {
        panic!("not a service list: {listed:?}");
    };
    assert!(
        listed
            .service
            .iter()
            .any(|s| s.name == "thinkbank.v1.Tenants"),
        "{listed:?}"
    );

    // Without the internal token nothing happens.
    let id = Uuid::now_v7();
    let anonymous = Request::new(pb::CreateTenantRequest {
        tenant_id: id.to_string(),
        name: "acme".into(),
    });
    refused(
        tenants.create_tenant(anonymous).await,
        Code::Unauthenticated,
        "internal token",
    );
    refused(
        tenants.create_tenant(create("not-a-uuid", "acme")).await,
        Code::InvalidArgument,
        "tenant_id",
    );
    refused(
        tenants.create_tenant(create(&id.to_string(), "   ")).await,
        Code::InvalidArgument,
        "name",
    );

    let created = tenants
        .create_tenant(create(&id.to_string(), " acme "))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let tenant = created.tenant.unwrap();
    assert_eq!(tenant.id, id.to_string());
    assert_eq!(tenant.name, "acme");
    // A retried call (same id and name) is the same tenant, not an error.
    let again = tenants
        .create_tenant(create(&id.to_string(), "acme"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.tenant.unwrap(), tenant);
    let other_id = Uuid::now_v7().to_string();
    refused(
        tenants.create_tenant(create(&other_id, "acme")).await,
        Code::AlreadyExists,
        "acme",
    );
    refused(
        tenants
            .create_tenant(create(&id.to_string(), "other"))
            .await,
        Code::AlreadyExists,
        &id.to_string(),
    );

    // The new tenant has its default collection, with the default tenant's model.
    let mut worker_client = worker.client().await;
    let mut list = authorised(pb::ListCollectionsRequest {});
    thinkbank_testkit::set_tenant(&mut list, id);
    let collections = worker_client
        .list_collections(list)
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(collections.len(), 1, "{collections:?}");
    assert_eq!(collections[0].name, "default");
    assert_eq!(collections[0].embedding_model, "all-minilm-l6-v2");

    // Quotas: unset at first, then what was set; negative ones name their field.
    assert_eq!(
        tenants
            .get_tenant_quotas(read(id))
            .await
            .unwrap()
            .into_inner(),
        pb::TenantQuotas::default()
    );
    let negative = pb::TenantQuotas {
        max_bytes: Some(-1),
        ..Default::default()
    };
    refused(
        tenants.set_tenant_quotas(quotas(id, negative)).await,
        Code::InvalidArgument,
        "max_bytes",
    );
    let wanted = pb::TenantQuotas {
        max_assets: Some(3),
        max_bytes: None,
        max_chunks: Some(0),
    };
    let set = tenants.set_tenant_quotas(quotas(id, wanted)).await.unwrap();
    assert_eq!(set.into_inner(), wanted);
    let stored = tenants.get_tenant_quotas(read(id)).await.unwrap();
    assert_eq!(stored.into_inner(), wanted);

    let unknown = Uuid::now_v7();
    refused(
        tenants.get_tenant_quotas(read(unknown)).await,
        Code::NotFound,
        &unknown.to_string(),
    );
    refused(
        tenants.set_tenant_quotas(quotas(unknown, wanted)).await,
        Code::NotFound,
        &unknown.to_string(),
    );
    worker.stop().await;
}
