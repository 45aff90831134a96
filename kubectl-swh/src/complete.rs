//! Shell completion in Cobra's protocol, the one kubectl (≥ 1.26) speaks with plugins: it runs
//! `kubectl_complete-swh ARG... PARTIAL` (the words after `kubectl swh`, the last one being
//! completed, `""` for a new word) and reads one candidate per line (`value<TAB>description`),
//! then `:DIRECTIVE` as the last line. `kubectl-swh __complete ...` answers the same for the
//! scripts of `kubectl swh completion bash|zsh|fish`.
//!
//! Subcommands, flags and flag values come from the clap definition (one source); SWH names
//! (`status NAME`), Services (`migrate svc/NAME`) and namespaces (`-n`) from the API server,
//! through the kubeconfig, `--kubeconfig`, `--context` and `-n` on the line.

use std::future::Future;
use std::time::Duration;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{DynamicObject, ListParams};

use crate::args::{Cli, GlobalArgs};

/// Cobra's ShellCompDirective bits.
pub mod directive {
    /// Let the shell complete file names too.
    pub const DEFAULT: u32 = 0;
    /// No space after the completion (e.g. `svc/` before a name).
    pub const NO_SPACE: u32 = 2;
    /// No file names.
    pub const NO_FILE_COMP: u32 = 4;
}

/// What a completion needs from the cluster.
pub trait Lookup {
    /// Names of the ServiceWithHealthchecks in `namespace` (None: the context's).
    fn swh_names(&self, namespace: Option<&str>) -> impl Future<Output = Vec<String>>;
    /// Names of the Services in `namespace`.
    fn service_names(&self, namespace: Option<&str>) -> impl Future<Output = Vec<String>>;
    /// Names of the namespaces.
    fn namespaces(&self) -> impl Future<Output = Vec<String>>;
}

/// The candidates (`value` or `value\tdescription`) and the directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<String>,
    pub directive: u32,
}

impl Completion {
    fn none(directive: u32) -> Completion {
        Completion {
            candidates: Vec::new(),
            directive,
        }
    }

    /// The protocol's text: one candidate per line, then `:DIRECTIVE`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.candidates {
            s.push_str(c);
            s.push('\n');
        }
        s.push_str(&format!(":{}\n", self.directive));
        s
    }
}

fn with_prefix(prefix: &str, items: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    items
        .into_iter()
        .filter(|(v, _)| v.starts_with(prefix))
        .map(|(v, d)| {
            let d = d.lines().next().unwrap_or_default().trim().to_string();
            if d.is_empty() { v } else { format!("{v}\t{d}") }
        })
        .collect()
}

/// Where the words before the one being completed left us.
#[derive(Debug, Default)]
struct Parsed {
    sub: Option<String>,
    positionals: Vec<String>,
    global: GlobalArgs,
    /// The flag (long name) whose value is being completed.
    pending_value_of: Option<String>,
}

fn find_arg<'a>(cmd: &'a clap::Command, word: &str) -> Option<&'a clap::Arg> {
    if let Some(long) = word.strip_prefix("--") {
        let long = long.split('=').next().unwrap_or(long);
        cmd.get_arguments().find(|a| a.get_long() == Some(long))
    } else {
        let c = word.strip_prefix('-')?.chars().next()?;
        cmd.get_arguments().find(|a| a.get_short() == Some(c))
    }
}

fn takes_value(a: &clap::Arg) -> bool {
    a.get_action().takes_values()
}

fn long_name(a: &clap::Arg) -> String {
    a.get_long()
        .map(String::from)
        .unwrap_or_else(|| a.get_id().to_string())
}

fn record(global: &mut GlobalArgs, long: &str, value: &str) {
    match long {
        "namespace" => global.namespace = Some(value.to_string()),
        "context" => global.context = Some(value.to_string()),
        "kubeconfig" => global.kubeconfig = Some(value.into()),
        _ => {}
    }
}

fn parse(root: &clap::Command, words: &[String]) -> Parsed {
    let mut p = Parsed::default();
    let mut cmd = root;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if w.starts_with('-') && w.len() > 1 {
            if let Some(a) = find_arg(cmd, w)
                && takes_value(a)
            {
                let long = long_name(a);
                // --flag=value, -nvalue, or the next word.
                let inline = if w.starts_with("--") {
                    w.split_once('=').map(|(_, v)| v.to_string())
                } else {
                    Some(w[2..].to_string()).filter(|v| !v.is_empty())
                };
                match inline {
                    Some(v) => record(&mut p.global, &long, &v),
                    None => match words.get(i + 1) {
                        Some(v) => {
                            record(&mut p.global, &long, v);
                            i += 1;
                        }
                        None => p.pending_value_of = Some(long),
                    },
                }
            }
        } else if p.sub.is_none() {
            if let Some(s) = root
                .get_subcommands()
                .find(|s| s.get_name() == w || s.get_all_aliases().any(|a| a == w))
            {
                p.sub = Some(s.get_name().to_string());
                cmd = s;
            } else {
                p.positionals.push(w.clone());
            }
        } else {
            p.positionals.push(w.clone());
        }
        i += 1;
    }
    p
}

/// The root command as clap builds it (global flags propagated to the subcommands).
fn root_command() -> clap::Command {
    let mut c = Cli::command();
    c.build();
    c
}

/// Completes `words` (the last one is the partial word) with names from `lookup`.
pub async fn complete(words: &[String], lookup: &impl Lookup) -> Completion {
    let root = root_command();
    let (before, partial) = match words.split_last() {
        Some((last, rest)) => (rest, last.as_str()),
        None => (&[][..], ""),
    };
    let p = parse(&root, before);
    let cmd = p
        .sub
        .as_deref()
        .and_then(|s| root.find_subcommand(s))
        .unwrap_or(&root);
    let ns = p.global.namespace.as_deref();

    // A flag's value: `-n <TAB>`, `-o <TAB>`, or `--output=<TAB>`.
    let (value_of, value_prefix, inline_prefix) = match &p.pending_value_of {
        Some(f) => (Some(f.clone()), partial.to_string(), String::new()),
        None => match partial.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => {
                match find_arg(cmd, flag).filter(|a| takes_value(a)) {
                    Some(a) => (Some(long_name(a)), v.to_string(), format!("{flag}=")),
                    None => (None, String::new(), String::new()),
                }
            }
            _ => (None, String::new(), String::new()),
        },
    };
    if let Some(flag) = value_of {
        let Some(arg) = cmd.get_arguments().find(|a| long_name(a) == flag) else {
            return Completion::none(directive::DEFAULT);
        };
        let values: Vec<(String, String)> = if flag == "namespace" {
            lookup
                .namespaces()
                .await
                .into_iter()
                .map(|n| (n, String::new()))
                .collect()
        } else {
            arg.get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| {
                    (
                        v.get_name().to_string(),
                        v.get_help().map(|h| h.to_string()).unwrap_or_default(),
                    )
                })
                .collect()
        };
        if values.is_empty() && flag != "namespace" {
            // A path (--kubeconfig, -f) or free text: let the shell complete files.
            return Completion::none(directive::DEFAULT);
        }
        let candidates = with_prefix(&value_prefix, values)
            .into_iter()
            .map(|c| format!("{inline_prefix}{c}"))
            .collect();
        return Completion {
            candidates,
            directive: directive::NO_FILE_COMP,
        };
    }

    if partial.starts_with('-') {
        let mut flags: Vec<(String, String)> = Vec::new();
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if let Some(l) = a.get_long() {
                flags.push((format!("--{l}"), help.clone()));
            }
            if let Some(s) = a.get_short() {
                flags.push((format!("-{s}"), help));
            }
        }
        return Completion {
            candidates: with_prefix(partial, flags),
            directive: directive::NO_FILE_COMP,
        };
    }

    match p.sub.as_deref() {
        None => Completion {
            candidates: with_prefix(
                partial,
                root.get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| {
                        (
                            s.get_name().to_string(),
                            s.get_about().map(|a| a.to_string()).unwrap_or_default(),
                        )
                    }),
            ),
            directive: directive::NO_FILE_COMP,
        },
        Some("status") if p.positionals.is_empty() => {
            let names = lookup.swh_names(ns).await;
            Completion {
                candidates: with_prefix(partial, names.into_iter().map(|n| (n, String::new()))),
                directive: directive::NO_FILE_COMP,
            }
        }
        Some("migrate") if p.positionals.is_empty() => {
            // `svc/NAME` (or `svc NAME`: the kind first, then the name).
            match partial.split_once('/') {
                Some((kind, name_prefix)) if crate::args::is_service_kind(kind) => {
                    let names = lookup.service_names(ns).await;
                    Completion {
                        candidates: with_prefix(
                            name_prefix,
                            names.into_iter().map(|n| (n, String::new())),
                        )
                        .into_iter()
                        .map(|n| format!("{kind}/{n}"))
                        .collect(),
                        directive: directive::NO_FILE_COMP,
                    }
                }
                _ => Completion {
                    candidates: with_prefix(
                        partial,
                        [("svc/".to_string(), "a Service: svc/NAME".to_string())],
                    ),
                    directive: directive::NO_FILE_COMP | directive::NO_SPACE,
                },
            }
        }
        Some("migrate")
            if p.positionals.len() == 1 && crate::args::is_service_kind(&p.positionals[0]) =>
        {
            let names = lookup.service_names(ns).await;
            Completion {
                candidates: with_prefix(partial, names.into_iter().map(|n| (n, String::new()))),
                directive: directive::NO_FILE_COMP,
            }
        }
        Some("completion") if p.positionals.is_empty() => Completion {
            candidates: with_prefix(
                partial,
                ["bash", "zsh", "fish"].map(|s| (s.to_string(), String::new())),
            ),
            directive: directive::NO_FILE_COMP,
        },
        _ => Completion::none(directive::NO_FILE_COMP),
    }
}

/// Names from the API server; any failure (no kubeconfig, unreachable, forbidden) gives no
/// names, never an error: completion must not print errors into the shell.
pub struct ApiLookup {
    global: GlobalArgs,
}

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl ApiLookup {
    /// With the kubeconfig/context/namespace flags found on the command line.
    pub fn for_words(words: &[String]) -> ApiLookup {
        let root = root_command();
        let before = words.split_last().map(|(_, r)| r).unwrap_or_default();
        ApiLookup {
            global: parse(&root, before).global,
        }
    }

    async fn names(&self, which: Which, namespace: Option<&str>) -> Vec<String> {
        let work = async {
            let mut g = self.global.clone();
            if let Some(ns) = namespace {
                g.namespace = Some(ns.to_string());
            }
            let (client, ns) = crate::client(&g).await.ok()?;
            let lp = ListParams::default();
            let names = |items: Vec<kube::core::ObjectMeta>| {
                items.into_iter().filter_map(|m| m.name).collect::<Vec<_>>()
            };
            let list = match which {
                Which::Swh => {
                    let ar = crate::status::api_resource();
                    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
                    let l = api.list_metadata(&lp).await.ok()?;
                    names(l.items.into_iter().map(|o| o.metadata).collect())
                }
                Which::Service => {
                    let api: Api<Service> = Api::namespaced(client, &ns);
                    let l = api.list_metadata(&lp).await.ok()?;
                    names(l.items.into_iter().map(|o| o.metadata).collect())
                }
                Which::Namespace => {
                    let api: Api<Namespace> = Api::all(client);
                    let l = api.list_metadata(&lp).await.ok()?;
                    names(l.items.into_iter().map(|o| o.metadata).collect())
                }
            };
            Some(list)
        };
        let mut names = tokio::time::timeout(LOOKUP_TIMEOUT, work)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[derive(Clone, Copy)]
enum Which {
    Swh,
    Service,
    Namespace,
}

impl Lookup for ApiLookup {
    async fn swh_names(&self, namespace: Option<&str>) -> Vec<String> {
        self.names(Which::Swh, namespace).await
    }

    async fn service_names(&self, namespace: Option<&str>) -> Vec<String> {
        self.names(Which::Service, namespace).await
    }

    async fn namespaces(&self) -> Vec<String> {
        self.names(Which::Namespace, None).await
    }
}

/// `kubectl_complete-swh WORD...` / `kubectl-swh __complete WORD...`: prints the candidates.
pub async fn run(words: &[String]) -> i32 {
    let lookup = ApiLookup::for_words(words);
    let c = complete(words, &lookup).await;
    let mut out = crate::Out::default();
    let _ = out.print(&c.render());
    0
}

/// `kubectl swh completion SHELL`: a script completing the `kubectl-swh` command through
/// `kubectl-swh __complete`. (For `kubectl swh ...` itself, kubectl's own completion calls
/// `kubectl_complete-swh`, installed next to `kubectl-swh`.)
pub fn script(shell: crate::args::Shell) -> &'static str {
    match shell {
        crate::args::Shell::Bash => BASH,
        crate::args::Shell::Zsh => ZSH,
        crate::args::Shell::Fish => FISH,
    }
}

const BASH: &str = r#"# bash completion for kubectl-swh. Load with: source <(kubectl-swh completion bash)
# (`kubectl swh <TAB>` itself is completed by kubectl's completion through kubectl_complete-swh.)
_kubectl_swh() {
    local cur=${COMP_WORDS[COMP_CWORD]} out directive line
    local -a words=("${COMP_WORDS[@]:1:COMP_CWORD}")
    out=$("${COMP_WORDS[0]}" __complete "${words[@]}" 2>/dev/null) || return
    directive=${out##*:}
    COMPREPLY=()
    while IFS= read -r line; do
        [[ -z $line || $line == :* ]] && continue
        COMPREPLY+=("${line%%$'\t'*}")
    done <<<"$out"
    if (( directive & 2 )); then compopt -o nospace 2>/dev/null; fi
    if (( directive & 4 )) || (( ${#COMPREPLY[@]} > 0 )); then
        compopt +o default 2>/dev/null
    fi
}
complete -o default -F _kubectl_swh kubectl-swh
"#;

const ZSH: &str = r#"#compdef kubectl-swh
# zsh completion for kubectl-swh. Load with: source <(kubectl-swh completion zsh)
_kubectl_swh() {
    local -a lines comps
    local out directive line
    out=$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${${lines[-1]}#:}
    for line in "${(@)lines[1,-2]}"; do
        [[ -n $line ]] && comps+=("${line%%$'\t'*}")
    done
    if (( directive & 2 )); then
        compadd -S '' -- "${comps[@]}"
    else
        compadd -- "${comps[@]}"
    fi
    (( directive & 4 )) || _files
}
if [[ $funcstack[1] == _kubectl_swh ]]; then _kubectl_swh "$@"; else compdef _kubectl_swh kubectl-swh; fi
"#;

const FISH: &str = r#"# fish completion for kubectl-swh. Load with: kubectl-swh completion fish | source
function __kubectl_swh_complete
    set -l args (commandline -opc)
    set -e args[1]
    kubectl-swh __complete $args (commandline -ct) 2>/dev/null | string match -v -r '^:' | string replace -r '\t.*' ''
end
complete -c kubectl-swh -f -a '(__kubectl_swh_complete)'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Lookup for Fake {
        async fn swh_names(&self, namespace: Option<&str>) -> Vec<String> {
            match namespace {
                Some("db") => vec!["postgres-read".into(), "postgres-write".into()],
                _ => vec!["smtp".into(), "web".into()],
            }
        }
        async fn service_names(&self, _: Option<&str>) -> Vec<String> {
            vec!["legacy".into(), "web".into()]
        }
        async fn namespaces(&self) -> Vec<String> {
            vec!["db".into(), "default".into(), "my-ns".into()]
        }
    }

    async fn c(words: &[&str]) -> Completion {
        let w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        complete(&w, &Fake).await
    }

    fn values(c: &Completion) -> Vec<&str> {
        c.candidates
            .iter()
            .map(|s| s.split('\t').next().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn subcommands() {
        let r = c(&[""]).await;
        assert_eq!(values(&r), ["status", "migrate", "completion", "help"]);
        assert_eq!(r.directive, directive::NO_FILE_COMP);
        assert!(r.candidates[0].starts_with("status\tShow ServiceWithHealthchecks"));
        assert_eq!(values(&c(&["mi"]).await), ["migrate"]);
        // Global flags before the subcommand do not hide it.
        assert_eq!(values(&c(&["-n", "db", "st"]).await), ["status"]);
    }

    #[tokio::test]
    async fn swh_names_of_the_namespace_on_the_line() {
        assert_eq!(values(&c(&["status", ""]).await), ["smtp", "web"]);
        assert_eq!(values(&c(&["status", "w"]).await), ["web"]);
        assert_eq!(
            values(&c(&["status", "-n", "db", ""]).await),
            ["postgres-read", "postgres-write"]
        );
        assert_eq!(
            values(&c(&["--namespace=db", "status", "postgres-w"]).await),
            ["postgres-write"]
        );
        assert_eq!(values(&c(&["-ndb", "status", "p"]).await).len(), 2);
        // One NAME only.
        assert!(c(&["status", "web", ""]).await.candidates.is_empty());
    }

    #[tokio::test]
    async fn flags_and_their_values() {
        let r = c(&["status", "--"]).await;
        let v = values(&r);
        for f in [
            "--all-namespaces",
            "--output",
            "--watch",
            "--namespace",
            "--kubeconfig",
        ] {
            assert!(v.contains(&f), "{f} missing from {v:?}");
        }
        assert!(!v.contains(&"--apply"), "migrate's flag offered for status");
        assert_eq!(
            values(&c(&["status", "-o", ""]).await),
            ["wide", "json", "yaml", "name"]
        );
        assert_eq!(
            values(&c(&["status", "--output=j"]).await),
            ["--output=json"]
        );
        assert_eq!(
            values(&c(&["--color", ""]).await),
            ["auto", "always", "never"]
        );
        assert_eq!(values(&c(&["status", "-n", "d"]).await), ["db", "default"]);
        // Files: left to the shell.
        let r = c(&["migrate", "-f", ""]).await;
        assert!(r.candidates.is_empty());
        assert_eq!(r.directive, directive::DEFAULT);
        assert!(values(&c(&["migrate", "--"]).await).contains(&"--apply"));
    }

    #[tokio::test]
    async fn migrate_offers_services() {
        let r = c(&["migrate", ""]).await;
        assert_eq!(values(&r), ["svc/"]);
        assert_eq!(r.directive, directive::NO_FILE_COMP | directive::NO_SPACE);
        assert_eq!(
            values(&c(&["migrate", "svc/"]).await),
            ["svc/legacy", "svc/web"]
        );
        assert_eq!(
            values(&c(&["migrate", "service/l"]).await),
            ["service/legacy"]
        );
        assert_eq!(values(&c(&["migrate", "svc", "w"]).await), ["web"]);
        assert_eq!(
            values(&c(&["completion", ""]).await),
            ["bash", "zsh", "fish"]
        );
    }

    #[test]
    fn render_ends_with_the_directive() {
        let r = Completion {
            candidates: vec!["a\tA".into(), "b".into()],
            directive: 4,
        };
        assert_eq!(r.render(), "a\tA\nb\n:4\n");
    }
}
