//! The normalized configuration as TOML: defaults filled in, durations in seconds,
//! every option by code with its typed value (`hex:`, `text:`, `ip:`).

use std::fmt::Write;

use super::{Config, Match, OptionSet};
use crate::dhcp::options as opt;

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn options(out: &mut String, prefix: &str, set: &OptionSet) {
    for (code, value) in set {
        let _ = writeln!(
            out,
            "{prefix}options.raw.{code} = {}   # {}",
            quote(&value.to_string()),
            opt::name(*code)
        );
    }
}

fn next_server(out: &mut String, n: Option<opt::AddrSpec>) {
    if let Some(n) = n {
        let _ = writeln!(out, "next_server = {}", quote(&n.to_string()));
    }
}

/// One set of match rules as an inline TOML table.
pub fn match_table(m: &Match) -> String {
    let mut parts = Vec::new();
    if let Some(t) = m.message {
        parts.push(format!(
            "message = {}",
            quote(&crate::dhcp::packet::message_type_name(t).to_ascii_lowercase())
        ));
    }
    if let Some(v) = &m.vendor_class {
        parts.push(format!("vendor_class = {}", quote(v)));
    }
    if let Some(v) = &m.user_class {
        parts.push(format!("user_class = {}", quote(v)));
    }
    if !m.requests.is_empty() {
        parts.push(format!("requests = {:?}", m.requests));
    }
    if let Some(v) = &m.mac {
        parts.push(format!("mac = {}", quote(v)));
    }
    format!("{{ {} }}", parts.join(", "))
}

pub fn normalized(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "[server]");
    let _ = writeln!(
        o,
        "state_dir = {}",
        quote(&c.server.state_dir.display().to_string())
    );
    let ifs: Vec<String> = c.server.interfaces.iter().map(|i| quote(i)).collect();
    if !ifs.is_empty() {
        let _ = writeln!(o, "interfaces = [{}]", ifs.join(", "));
    }
    let d = &c.dhcp;
    let _ = writeln!(o, "\n[dhcp]");
    let _ = writeln!(o, "lease_time = {}", d.lease_time);
    let _ = writeln!(o, "offer_time = {}", d.offer_time);
    let _ = writeln!(o, "decline_time = {}", d.decline_time);
    let _ = writeln!(o, "authoritative = {}", d.authoritative);
    let _ = writeln!(o, "rate_limit = {}", d.rate_limit);
    let _ = writeln!(o, "new_clients_per_second = {}", d.new_clients_per_second);
    let _ = writeln!(o, "new_clients_burst = {}", d.new_clients_burst);
    next_server(&mut o, d.next_server);
    options(&mut o, "", &d.options);
    for s in &d.subnets {
        let _ = writeln!(o, "\n[[dhcp.subnet]]");
        let _ = writeln!(o, "cidr = {}", quote(&s.net.to_string()));
        let pools: Vec<String> = s.pools.iter().map(|p| quote(&p.to_string())).collect();
        let _ = writeln!(o, "pool = [{}]", pools.join(", "));
        if let Some(l) = s.lease_time {
            let _ = writeln!(o, "lease_time = {l}");
        }
        next_server(&mut o, s.next_server);
        options(&mut o, "", &s.options);
    }
    for k in &d.classes {
        let _ = writeln!(o, "\n[[dhcp.class]]");
        let _ = writeln!(o, "name = {}", quote(&k.name));
        if let Some(p) = &k.profile {
            let _ = writeln!(o, "profile = {}", quote(p));
        }
        let rules: Vec<String> = k.matchers.iter().map(match_table).collect();
        match rules.as_slice() {
            [one] if one == "{  }" => {}
            [one] => {
                let _ = writeln!(o, "match = {one}");
            }
            many => {
                let _ = writeln!(o, "match = [{}]", many.join(", "));
            }
        }
        for (code, value) in &k.defaults {
            let _ = writeln!(
                o,
                "# default (used where nothing else sets it): options.raw.{code} = {}   # {}",
                quote(&value.to_string()),
                opt::name(*code)
            );
        }
        options(&mut o, "", &k.options);
        if !k.force.is_empty() {
            let _ = writeln!(o, "force = {:?}", k.force);
        }
        if let Some(only) = &k.only {
            let _ = writeln!(o, "only = {only:?}");
        }
        next_server(&mut o, k.next_server);
    }
    if !d.images.is_empty() {
        let _ = writeln!(o, "\n[dhcp.images]   # built-in names and yours");
        for (model, file) in &d.images {
            let _ = writeln!(o, "{} = {}", quote(model), quote(file));
        }
    }
    for h in &d.hosts {
        let _ = writeln!(o, "\n[[dhcp.host]]");
        let _ = writeln!(o, "mac = {}", quote(&h.mac.to_string()));
        if let Some(ip) = h.ip {
            let _ = writeln!(o, "ip = {}", quote(&ip.to_string()));
        }
        if let Some(n) = &h.hostname {
            let _ = writeln!(o, "hostname = {}", quote(n));
        }
        next_server(&mut o, h.next_server);
        options(&mut o, "", &h.options);
    }
    if let Some(n) = &c.dns {
        let _ = writeln!(o, "\n[dns]");
        let _ = writeln!(o, "zone = {}", quote(&n.zone));
        let _ = writeln!(o, "ttl = {}", n.ttl);
        let up: Vec<String> = n.upstream.iter().map(|u| quote(&u.to_string())).collect();
        let _ = writeln!(o, "upstream = [{}]", up.join(", "));
        let _ = writeln!(o, "leases = {}", n.leases);
        let _ = writeln!(o, "port = {}", n.port);
        let _ = writeln!(o, "self_name = {}", quote(&n.self_name));
        for h in &n.hosts {
            let _ = writeln!(o, "\n[[dns.host]]");
            let _ = writeln!(o, "name = {}", quote(&h.name));
            let _ = writeln!(o, "ip = {}", quote(&h.ip.to_string()));
        }
        for s in &n.switchovers {
            let _ = writeln!(o, "\n[[dns.switchover]]");
            let _ = writeln!(o, "name = {}", quote(&s.name));
            let m: Vec<String> = s.members.iter().map(|m| quote(m)).collect();
            let _ = writeln!(o, "members = [{}]", m.join(", "));
            let _ = writeln!(o, "mode = {}", quote(s.mode.as_str()));
            if let Some(p) = &s.provision_name {
                let _ = writeln!(o, "provision_name = {}", quote(p));
            }
            let svc: Vec<String> = s
                .services
                .iter()
                .map(|v| format!("{{ srv = {}, port = {} }}", quote(&v.srv), v.port))
                .collect();
            let _ = writeln!(o, "services = [{}]", svc.join(", "));
            if let Some(h) = &s.health {
                let _ = writeln!(
                    o,
                    "health = {{ check = {}, interval = {}, timeout = {} }}   # checks port {}",
                    quote(h.check.as_str()),
                    h.interval,
                    h.timeout,
                    h.port
                );
            }
        }
    }
    let t = &c.time;
    let _ = writeln!(o, "\n[time]");
    let _ = writeln!(o, "serve = {}", t.serve);
    let _ = writeln!(o, "stratum = {}", t.stratum);
    let _ = writeln!(o, "port = {}", t.port);
    if let Some(f) = &c.files {
        let list = |v: Vec<String>| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        let _ = writeln!(o, "\n[files]");
        let _ = writeln!(o, "root = {}", quote(&f.root.display().to_string()));
        let _ = writeln!(o, "tftp = {}", f.tftp);
        let _ = writeln!(o, "tftp_port = {}", f.tftp_port);
        let _ = writeln!(
            o,
            "http = [{}]",
            list(f.http.iter().map(|a| a.to_string()).collect())
        );
        let _ = writeln!(o, "private = [{}]", list(f.private.clone()));
        let _ = writeln!(o, "max_transfers = {}", f.max_transfers);
        let _ = writeln!(o, "max_window = {}", f.max_window);
        let _ = writeln!(o, "tftp_timeout = {}", f.tftp_timeout.as_secs());
        let _ = writeln!(o, "tftp_retries = {}", f.tftp_retries);
        if let Some(u) = &f.upload {
            let _ = writeln!(o, "upload = {}", quote(&u.display().to_string()));
        }
        let _ = writeln!(o, "upload_max = {}", f.upload_max);
        let _ = writeln!(o, "http_head_timeout = {}", f.http_head_timeout.as_secs());
        let _ = writeln!(o, "http_per_source = {}", f.http_per_source);
    }
    let a = &c.admin;
    let _ = writeln!(o, "\n[admin]");
    match a.listen {
        Some(l) => {
            let _ = writeln!(o, "listen = {}", quote(&l.to_string()));
        }
        None => {
            let _ = writeln!(o, "listen = \"off\"");
        }
    }
    // The files' paths only: never what they hold.
    if let Some(f) = &a.password_file {
        let _ = writeln!(o, "password_file = {}", quote(&f.display().to_string()));
    }
    if let Some(f) = &a.token_file {
        let _ = writeln!(o, "token_file = {}", quote(&f.display().to_string()));
    }
    let _ = writeln!(o, "phone_network = {}", a.phone_network);
    let s = &c.syslog;
    let _ = writeln!(o, "\n[syslog]");
    let _ = writeln!(o, "serve = {}", s.serve);
    let _ = writeln!(o, "port = {}", s.port);
    let _ = writeln!(o, "lines_per_phone = {}", s.lines_per_phone);
    let inv = &c.inventory;
    let _ = writeln!(o, "\n[inventory]");
    if let Some(f) = &inv.file {
        let _ = writeln!(o, "file = {}", quote(&f.display().to_string()));
    }
    let _ = writeln!(o, "templates = {}", quote(&inv.templates));
    if let Some(s) = &inv.syslog {
        let _ = writeln!(o, "syslog = {}", quote(s));
    }
    // Phones are listed, not repeated: they hold passwords.
    let _ = writeln!(o, "# {} phones", c.phones.phones.len());
    for p in &c.phones.phones {
        let id = p
            .mac
            .map(|m| m.to_string())
            .or_else(|| p.computer.clone())
            .unwrap_or_else(|| "no MAC yet".into());
        let _ = writeln!(
            o,
            "#   {id} {} ({}) extension {} from {}",
            p.name.as_deref().unwrap_or("-"),
            p.family,
            p.extension.as_deref().unwrap_or("-"),
            p.origin
        );
    }
    o
}
