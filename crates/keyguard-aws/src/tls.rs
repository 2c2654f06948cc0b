//! Which certificate authorities the Lambda trusts: the five Amazon Trust Services roots, not the platform's store.
//!
//! Every AWS service endpoint in the standard partition presents a certificate that chains to one of these five
//! roots, and Amazon Trust Services asks custom trust stores to hold all five (https://www.amazontrust.com/repository/).
//! Trusting only them has two effects:
//! - a certificate mis-issued by any of the ~140 other public authorities cannot intercept the calls of a function
//!   that may deactivate keys across the organization;
//! - start-up does not read and parse the platform's store (`/etc/ssl/certs`, every root twice: the bundle and the
//!   hashed directory), which was 2 of the 5 ms the function took to be ready (`make bench`, "Cold start").
//!
//! The platform store is kept where these roots may not be the right ones: outside the standard partition (China,
//! GovCloud, the isolated and sovereign regions), and wherever the operator names a store with `SSL_CERT_FILE` or
//! `SSL_CERT_DIR` (a TLS-inspecting proxy in the function's VPC). The CLI always uses the platform store.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The five roots, PEM (certs/amazon-trust-services.pem says where they come from).
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("../certs/amazon-trust-services.pem");

/// Region prefixes outside the standard `aws` partition: their endpoints may chain to other roots.
const OTHER_PARTITIONS: &[&str] = &["cn-", "us-gov-", "us-iso", "eu-isoe-", "eusc-"];

/// Which store the Lambda's HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// Only the five Amazon Trust Services roots.
    AmazonTrustServices,
    /// The platform's store, as the SDK loads it by default.
    Platform,
}

impl TrustRoots {
    /// The Lambda's choice for `region`, given whether the operator set `SSL_CERT_FILE` or `SSL_CERT_DIR`.
    pub fn for_lambda(region: &str, operator_store: bool) -> TrustRoots {
        if operator_store || OTHER_PARTITIONS.iter().any(|p| region.starts_with(p)) {
            TrustRoots::Platform
        } else {
            TrustRoots::AmazonTrustServices
        }
    }

    /// Whether the environment names a store (the variables the platform store honours).
    pub fn operator_store_from_env() -> bool {
        ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    }

    /// The HTTPS client trusting these roots; `None` keeps the SDK's default client (the platform store).
    pub fn http_client(self) -> Option<SharedHttpClient> {
        match self {
            TrustRoots::Platform => None,
            TrustRoots::AmazonTrustServices => Some(https_client(amazon_trust_services())),
        }
    }
}

fn amazon_trust_services() -> TlsContext {
    TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes()))
        .build()
        // Building a context only stores its parts (the PEM is parsed when the first connection is made); an error
        // here would be a change in the SDK, and the default client is the safe fallback.
        .unwrap_or_default()
}

/// The SDK's default HTTPS client (rustls with aws-lc, the proxy from the environment, the client's timeouts and
/// sleep), with `context` as its trust store.
fn https_client(context: TlsContext) -> SharedHttpClient {
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    /// SHA-256 of each root's subject public key, as https://www.amazontrust.com/repository/ publishes them.
    const PUBLISHED: [&str; 5] = [
        "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2", // Amazon Root CA 1
        "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461", // Amazon Root CA 2
        "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9", // Amazon Root CA 3
        "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5", // Amazon Root CA 4
        "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92", // Starfield Services Root CA - G2
    ];

    /// The DER SEQUENCE around `contents` (webpki keeps a trust anchor's key without its outer tag and length).
    fn sequence(contents: &[u8]) -> Vec<u8> {
        let mut der = vec![0x30];
        let n = contents.len();
        match n {
            0..=0x7f => der.push(n as u8),
            0x80..=0xff => der.extend([0x81, n as u8]),
            _ => der.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        der.extend_from_slice(contents);
        der
    }

    #[test]
    fn the_bundle_holds_exactly_the_five_published_roots() {
        let certs: Vec<CertificateDer<'_>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes()).collect::<Result<_, _>>().unwrap();
        let hashes: Vec<String> = certs
            .iter()
            .map(|cert| {
                let anchor = webpki::anchor_from_trusted_cert(cert).unwrap();
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &sequence(anchor.subject_public_key_info.as_ref()),
                );
                digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        assert_eq!(hashes, PUBLISHED);
    }

    #[test]
    fn the_standard_partition_trusts_amazon_roots_and_every_other_keeps_the_platform_store() {
        for region in ["us-east-1", "eu-west-3", "ap-southeast-5", "il-central-1"] {
            assert_eq!(TrustRoots::for_lambda(region, false), TrustRoots::AmazonTrustServices, "{region}");
            assert!(TrustRoots::for_lambda(region, false).http_client().is_some());
        }
        for region in
            ["cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "eusc-de-east-1"]
        {
            assert_eq!(TrustRoots::for_lambda(region, false), TrustRoots::Platform, "{region}");
        }
        // An operator's store wins everywhere, and leaves the SDK's default client in place.
        assert_eq!(TrustRoots::for_lambda("us-east-1", true), TrustRoots::Platform);
        assert!(TrustRoots::Platform.http_client().is_none());
    }
}
