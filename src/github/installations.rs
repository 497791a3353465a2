//! The repositories a GitHub App is installed on: what the scheduler serves besides
//! `[dispatch] repositories` (reference §12).

use super::request;
use super::{Clients, GitHub, GitHubError};
use crate::ids::RepoName;

impl GitHub {
    /// Every repository of every installation of the App, sorted; empty with a token.
    pub async fn installed_repositories(&self) -> Result<Vec<RepoName>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Account {
            login: String,
        }
        #[derive(serde::Deserialize)]
        struct Installation {
            id: u64,
            account: Account,
        }
        #[derive(serde::Deserialize)]
        struct Repository {
            full_name: String,
        }
        let Clients::App { app, .. } = &self.inner.clients else {
            return Ok(Vec::new());
        };
        let what = "GET the GitHub App's installations";
        let first = "/app/installations?per_page=100".to_string();
        let channel = self.channel(app, "app");
        let installations: Vec<Installation> =
            request::get_all(&channel, &self.inner.base, first, what, None).await?;
        let mut repos = Vec::new();
        for installation in installations {
            let owner = installation.account.login.to_ascii_lowercase();
            let what = format!("GET repositories of the App's installation on {owner}");
            // The cached client: its installation token serves the calls about these
            // repositories too, instead of a new token each pass.
            let client = self.installation_client(&owner, installation.id, &what)?;
            let channel = self.channel(&client, &owner);
            let first = "/installation/repositories?per_page=100".to_string();
            let listed: Vec<Repository> = request::get_all(
                &channel,
                &self.inner.base,
                first,
                &what,
                Some("repositories"),
            )
            .await?;
            for r in listed {
                match r.full_name.parse::<RepoName>() {
                    Ok(name) => repos.push(name),
                    Err(e) => tracing::warn!(name = %r.full_name, error = %e,
                        "an installed repository's name is not owner/name; skipped"),
                }
            }
        }
        repos.sort();
        repos.dedup();
        Ok(repos)
    }
}
