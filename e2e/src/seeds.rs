//! The SWH manifests of Deckhouse's documentation, unchanged (no namespace: the caller picks
//! one). The seed scenarios of the demo and the e2e tests apply exactly these.

/// `web`: an HTTP probe of the VM's web server on 8080.
pub const WEB: &str = r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: HTTP
      http:
        targetPort: 8080
        method: GET
        path: /healthz
"#;

/// `smtp`: a TCP probe of the VM's SMTP server on 2525.
pub const SMTP: &str = r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: smtp
spec:
  ports:
  - port: 25
    protocol: TCP
    targetPort: 2525
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: TCP
      tcp:
        targetPort: 2525
"#;

/// `postgres-read`: every healthy PostgreSQL server (`SELECT 1`).
pub const POSTGRES_READ: &str = r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: postgres-read
spec:
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 5432
  selector:
    app: postgres
  healthcheck:
    probes:
    - mode: PostgreSQL
      postgreSQL:
        targetPort: 5432
        dbName: postgres
        authSecretName: cred-secret
        query: "SELECT 1"
"#;

/// `postgres-write`: only the primary (`SELECT NOT pg_is_in_recovery()`).
pub const POSTGRES_WRITE: &str = r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: postgres-write
spec:
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 5432
  selector:
    app: postgres
  healthcheck:
    probes:
    - mode: PostgreSQL
      postgreSQL:
        targetPort: 5432
        dbName: postgres
        authSecretName: cred-secret
        query: "SELECT NOT pg_is_in_recovery()"
"#;

/// All four, as one multi-document YAML.
pub fn all() -> String {
    [WEB, SMTP, POSTGRES_READ, POSTGRES_WRITE].join("---\n")
}
