//! `signalboard token create | list | revoke`: tokens are made and revoked on the database itself,
//! beside a running server (which sees the change within a second), never over the network.

use crate::config::{TokenAction, TokenArgs};
use crate::server::access::tokens::NewToken;
use crate::server::domain::Timestamp;
use crate::server::store::Store;
use anyhow::{bail, Context};

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let url = args.database_url()?;
    let store = Store::open_shared(&url)
        .await
        .with_context(|| format!("opening the database {url}"))?;
    let result = act(&store, args.action).await;
    store.close().await;
    result
}

async fn act(store: &Store, action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create { name, scope } => {
            let token = NewToken::generate(&name, scope, Timestamp::now().millis())
                .map_err(anyhow::Error::msg)?;
            if !store.create_token(&token.record).await? {
                bail!("a token named {name:?} exists: revoke it first, or choose another name");
            }
            println!("{}", token.secret);
            eprintln!(
                "Token {name:?} ({}) created. It is shown this once: store it now.",
                scope.name()
            );
        }
        TokenAction::List => {
            println!("name\tscope\tcreated (UTC)");
            for token in store.tokens().await? {
                let created = chrono::DateTime::from_timestamp_millis(token.created_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                println!("{}\t{}\t{created}", token.name, token.scope);
            }
        }
        TokenAction::Revoke { name } => {
            if !store.revoke_token(&name).await? {
                bail!("no token is named {name:?}");
            }
            eprintln!("Token {name:?} revoked: a running server refuses it within a second.");
        }
    }
    Ok(())
}
