//! Page tokens and metadata filters over the wire, against a real worker and PostgreSQL: tenant
//! B sends tokens tenant A was given (as issued, and tampered with: truncated, extended, bytes
//! replaced, numbers pushed out of range) and garbage, and metadata filters with generated JSON.
//! Every answer is either B's own rows or INVALID_ARGUMENT with a reason; never another
//! tenant's page, never an internal error.

use std::collections::BTreeSet;

use proptest::{prelude::*, test_runner::TestRunner};
use thinkbank_proto::v1 as pb;
use thinkbank_testkit::{TestDatabase, WorkerHandle, as_tenant, spawn_worker};
use tonic::{Code, transport::Channel};
use uuid::Uuid;

use super::{super::config, filters::hostile_json};

type Client = pb::ai_worker_client::AiWorkerClient<Channel>;

struct World {
    _db: TestDatabase,
    _worker: WorkerHandle,
    client: Client,
    tenant_b: Uuid,
    /// Ids of every asset and chunk of tenant B.
    b_ids: BTreeSet<String>,
    /// Tokens the worker issued to tenant A.
    a_tokens: Vec<String>,
}

fn search(query: &str, page_token: String) -> pb::VectorSearchRequest {
    pb::VectorSearchRequest {
        query: query.into(),
        top_k: 1,
        mode: pb::SearchMode::Keyword as i32,
        page_token,
        ..Default::default()
    }
}

impl World {
    async fn set_up() -> Self {
        let db = TestDatabase::create().await;
        let worker = spawn_worker(&db).await;
        let mut client = worker.client().await;
        let mut conn = db.connect().await;
        let mut tenants = Vec::new();
        for name in ["tokens-a", "tokens-b"] {
            let id = Uuid::now_v7();
            sqlx::query("INSERT INTO worker.tenants (id, name) VALUES ($1, $2)")
                .bind(id)
                .bind(name)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO worker.collections (id, tenant_id, name, embedding_model, \
                 text_search_config) SELECT $1, $2, 'default', embedding_model, \
                 text_search_config FROM worker.collections WHERE name = 'default' \
                 AND tenant_id = '00000000-0000-0000-0000-000000000001'",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
            tenants.push(id);
        }
        let (tenant_a, tenant_b) = (tenants[0], tenants[1]);
        let mut b_ids = BTreeSet::new();
        for (tenant, word) in [(tenant_a, "alpha"), (tenant_b, "bravo")] {
            for i in 0..3 {
                let text =
                    format!("# Ledger {i}\n\nThe ledger {word} entry {i} lists the harbour fees.");
                let asset = client
                    .process_asset(as_tenant(
                        tenant,
                        pb::ProcessAssetRequest {
                            filename: format!("{word}-{i}.md"),
                            content: text.into_bytes().into(),
                            wait: true,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .asset
                    .unwrap();
                assert_eq!(
                    asset.status,
                    pb::AssetStatus::Ready as i32,
                    "{}",
                    asset.error
                );
                if tenant == tenant_b {
                    b_ids.insert(asset.id);
                }
            }
        }
        let chunks: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM worker.chunks WHERE tenant_id = $1")
                .bind(tenant_b)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        b_ids.extend(chunks.iter().map(Uuid::to_string));

        let mut a_tokens = Vec::new();
        let page = client
            .vector_search(as_tenant(
                tenant_a,
                search("ledger harbour fees", String::new()),
            ))
            .await
            .unwrap()
            .into_inner();
        a_tokens.push(page.next_page_token);
        let page = client
            .list_assets(as_tenant(
                tenant_a,
                pb::ListAssetsRequest {
                    page_size: 1,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        a_tokens.push(page.next_page_token);
        assert!(a_tokens.iter().all(|t| !t.is_empty()), "{a_tokens:?}");
        Self {
            _db: db,
            _worker: worker,
            client,
            tenant_b,
            b_ids,
            a_tokens,
        }
    }

    /// Tenant B's answer to `token` on every paginated listing it reaches.
    async fn try_token(&self, token: String) -> Result<(), TestCaseError> {
        let mut client = self.client.clone();
        let searched = client
            .vector_search(as_tenant(
                self.tenant_b,
                search("ledger harbour fees", token.clone()),
            ))
            .await
            .map(|r| {
                r.into_inner()
                    .hits
                    .into_iter()
                    .flat_map(|h| [h.asset_id, h.chunk_id])
                    .collect()
            });
        self.judge("search", &token, searched)?;
        let listed = client
            .list_assets(as_tenant(
                self.tenant_b,
                pb::ListAssetsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner().assets.into_iter().map(|a| a.id).collect());
        self.judge("list_assets", &token, listed)?;
        let conversations = client
            .list_conversations(as_tenant(
                self.tenant_b,
                pb::ListConversationsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| {
                r.into_inner()
                    .conversations
                    .into_iter()
                    .map(|c| c.id)
                    .collect::<Vec<_>>()
            });
        // B has no conversation: any row would be someone else's.
        prop_assert!(
            conversations.as_ref().map_or(true, Vec::is_empty),
            "{conversations:?}"
        );
        self.judge("list_conversations", &token, conversations)
    }

    fn judge(
        &self,
        rpc: &str,
        input: &str,
        answer: Result<Vec<String>, tonic::Status>,
    ) -> Result<(), TestCaseError> {
        match answer {
            Ok(ids) => {
                for id in ids {
                    prop_assert!(
                        self.b_ids.contains(&id),
                        "{rpc} {input:?}: {id} is not tenant B's"
                    );
                }
            }
            Err(status) => {
                prop_assert_eq!(
                    status.code(),
                    Code::InvalidArgument,
                    "{} {:?}: {:?}",
                    rpc,
                    input,
                    status
                );
                prop_assert!(!status.message().trim().is_empty());
            }
        }
        Ok(())
    }

    async fn try_filter(
        &self,
        key: String,
        op: i32,
        value: serde_json::Value,
    ) -> Result<(), TestCaseError> {
        let mut client = self.client.clone();
        let mut request = search("ledger harbour fees", String::new());
        request.metadata = vec![pb::MetadataCondition {
            key: key.clone(),
            op,
            value: Some(thinkbank_proto::json::value_from_json(&value)),
        }];
        let answer = client
            .vector_search(as_tenant(self.tenant_b, request))
            .await
            .map(|r| {
                r.into_inner()
                    .hits
                    .into_iter()
                    .map(|h| h.asset_id)
                    .collect()
            });
        self.judge(
            "search with a metadata filter",
            &format!("{key:?} {op} {value}"),
            answer,
        )
    }
}

/// A's tokens as issued, tampered with, or garbage.
fn hostile_token(issued: Vec<String>) -> impl Strategy<Value = String> {
    let issued = prop::sample::select(issued);
    prop_oneof![
        issued.clone(),
        (issued.clone(), any::<prop::sample::Index>())
            .prop_map(|(t, i)| t[..i.index(t.len() + 1)].to_owned()),
        (issued.clone(), "\\PC{1,4}").prop_map(|(t, extra)| format!("{t}{extra}")),
        (issued.clone(), any::<prop::sample::Index>(), any::<char>()).prop_map(|(t, i, c)| {
            let mut chars: Vec<char> = t.chars().collect();
            let at = i.index(chars.len());
            chars[at] = c;
            chars.into_iter().collect()
        }),
        (issued, any::<i64>()).prop_map(|(t, n)| match t.split_once('.') {
            Some((_, id)) => format!("{n}.{id}"),
            None => format!("o{n}"),
        }),
        prop::sample::select(vec![
            "o",
            "o-1",
            "o1000",
            "o18446744073709551616",
            ".",
            "0.",
            "-0.00000000-0000-0000-0000-000000000000",
            // Times chrono accepts and PostgreSQL cannot hold.
            "-210866803200000001.00000000-0000-0000-0000-000000000000",
            "253402300800000000.00000000-0000-0000-0000-000000000000",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,40}",
        (1usize..20_000).prop_map(|n| "9".repeat(n)),
    ]
}

#[test]
fn tampered_page_tokens_and_hostile_filters_never_reach_another_tenant_or_fail_unclearly() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(World::set_up());
    let mut runner = TestRunner::new(config(96));
    runner
        .run(&hostile_token(world.a_tokens.clone()), |token| {
            runtime.block_on(world.try_token(token))
        })
        .unwrap();
    let filter = (
        prop_oneof!["\\PC{0,12}", Just("kind".to_owned()), Just(String::new())],
        0i32..7,
        hostile_json(),
    );
    runner
        .run(&filter, |(key, op, value)| {
            runtime.block_on(world.try_filter(key, op, value))
        })
        .unwrap();
}
