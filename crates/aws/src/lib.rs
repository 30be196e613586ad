//! The AWS-backed sources: the users of an IAM Identity Center identity store, and the
//! database users of Amazon Redshift targets, provisioned clusters and serverless
//! workgroups alike.
//!
//! Redshift has no API that lists database users, so a target uses the AWS API only to
//! find out where to connect (`DescribeClusters`, `GetWorkgroup`), who its master or
//! admin user is, and to obtain temporary database credentials; the users themselves are
//! read over SQL by [`idgraph_sources::postgres::read_catalog`].
//!
//! # Layout
//! - [`sdk_config`]: how every AWS client here is configured: the standard credential
//!   and region chain, an HTTPS client, standard retries, timeouts.
//! - [`identity_center`]: [`IdentityCenterSource`], `identitystore:ListUsers` with paging
//!   and a client-side rate limit.
//! - [`provisioned`]: [`ProvisionedTarget`], a cluster of the `redshift` API.
//! - [`serverless`]: [`ServerlessTarget`], a workgroup of the `redshift-serverless` API.
//! - `target`: what both kinds of target share once they know where to connect; the one
//!   place where provisioned and serverless meet.
//! - `error`: AWS SDK errors as [`SourceError`](idgraph_sources::SourceError)s.
//! - `limiter`: the client-side request rate limiter.
//! - [`sdk`]: the SDK crates this crate is built on, for callers (and tests) that need
//!   clients of their own, with the same versions and features.

mod config;
mod error;
pub mod identity_center;
mod limiter;
pub mod provisioned;
pub mod serverless;
mod target;

pub use aws_credential_types::Credentials;
pub use config::{sdk_config, SdkConfig, MAX_ATTEMPTS};
pub use identity_center::{IdentityCenterOptions, IdentityCenterSource};
pub use provisioned::{ProvisionedCredentials, ProvisionedOptions, ProvisionedTarget};
pub use serverless::{ServerlessCredentials, ServerlessOptions, ServerlessTarget};
pub use target::{
    Login, RedshiftTarget, Resolved, TargetApi, TargetOptions, CREDENTIALS_DURATION_SECONDS,
    SQL_TIMEOUT,
};

/// The AWS SDK crates this crate uses, re-exported so that callers build clients with
/// exactly the same versions and features (and the same HTTPS client, through
/// [`sdk_config`]).
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_identitystore as identitystore;
    pub use aws_sdk_redshift as redshift;
    pub use aws_sdk_redshiftserverless as redshiftserverless;
}

#[cfg(test)]
mod testing;
