use std::net::Ipv4Addr;

use hickory_proto::rr::{Name, RData, RecordType};

use super::*;
use crate::config::Config;

/// The example configuration: the CIC pair of seed 001 (L557-736).
const EXAMPLE: &str = include_str!("../../../config/dialtone.toml");

const ME: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const NOW: u64 = 1_800_000_000;

fn zone(text: &str) -> Zone {
    let c = Config::parse("t.toml", text).unwrap();
    let subnets: Vec<Ipv4Net> = c.dhcp.subnets.iter().map(|s| s.net).collect();
    Zone::new(c.dns.as_ref().unwrap(), &subnets, c.time.serve)
}

fn ask(z: &Zone, name: &str, t: RecordType) -> Answer {
    z.answer(&Name::from_ascii(name).unwrap(), t, Some(ME), NOW)
}

fn a_of(records: &[Record]) -> Vec<Ipv4Addr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn srv_of(records: &[Record]) -> Vec<(u16, u16, u16, String)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect()
}

#[test]
fn srv_answer_reproduces_the_cic_example_with_glue() {
    let z = zone(EXAMPLE);
    let a = ask(&z, "_sip._tcp.lab.voip.", RecordType::SRV);
    assert_eq!(a.rcode, Rcode::NoError);
    assert!(a.authoritative);
    assert_eq!(
        srv_of(&a.answers),
        vec![
            (0, 0, 8060, "vm40ic1.lab.voip.".to_string()),
            (0, 0, 8060, "vm40ic2.lab.voip.".to_string()),
        ]
    );
    assert_eq!(
        a_of(&a.additionals),
        vec![
            Ipv4Addr::new(10, 250, 1, 151),
            Ipv4Addr::new(10, 250, 1, 152)
        ]
    );
    let s = ask(&z, "_sips._tcp.lab.voip.", RecordType::SRV);
    assert!(srv_of(&s.answers).iter().all(|r| r.2 == 8061));
    // Case does not matter.
    let u = ask(&z, "_SIP._UDP.Lab.Voip.", RecordType::SRV);
    assert_eq!(srv_of(&u.answers).len(), 2);
}

#[test]
fn hosts_provision_and_appliance_names() {
    let z = zone(EXAMPLE);
    assert_eq!(
        a_of(&ask(&z, "vm40ic1.lab.voip.", RecordType::A).answers),
        vec![Ipv4Addr::new(10, 250, 1, 151)]
    );
    assert_eq!(
        a_of(&ask(&z, "provision.lab.voip.", RecordType::A).answers),
        vec![
            Ipv4Addr::new(10, 250, 1, 151),
            Ipv4Addr::new(10, 250, 1, 152)
        ]
    );
    // ProvisioningServer: bare and in the zone, the asking interface's address.
    for n in ["ProvisioningServer.", "provisioningserver.lab.voip."] {
        assert_eq!(a_of(&ask(&z, n, RecordType::A).answers), vec![ME], "{n}");
    }
    let ntp = ask(&z, "_ntp._udp.lab.voip.", RecordType::SRV);
    assert_eq!(
        srv_of(&ntp.answers),
        vec![(0, 0, 123, "dialtone.lab.voip.".to_string())]
    );
    assert_eq!(a_of(&ntp.additionals), vec![ME]);
    // Apex: SOA and NS.
    let soa = ask(&z, "lab.voip.", RecordType::SOA);
    assert!(matches!(soa.answers[0].data, RData::SOA(_)));
    let ns = ask(&z, "lab.voip.", RecordType::NS);
    assert!(matches!(ns.answers[0].data, RData::NS(_)));
    assert_eq!(a_of(&ns.additionals), vec![ME]);
}

#[test]
fn nxdomain_nodata_and_refused() {
    let z = zone(EXAMPLE);
    let nx = ask(&z, "nosuch.lab.voip.", RecordType::A);
    assert_eq!(nx.rcode, Rcode::NxDomain);
    assert!(nx.answers.is_empty());
    assert!(matches!(nx.authority[0].data, RData::SOA(_)));
    // The name exists, not with this type: NOERROR, empty, SOA for caching.
    let nodata = ask(&z, "vm40ic1.lab.voip.", RecordType::AAAA);
    assert_eq!(nodata.rcode, Rcode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authority.len(), 1);
    // An empty non-terminal exists.
    assert_eq!(
        ask(&z, "_udp.lab.voip.", RecordType::A).rcode,
        Rcode::NoError
    );
    // Outside: not an open resolver.
    assert_eq!(ask(&z, "example.com.", RecordType::A).rcode, Rcode::Refused);
    assert_eq!(ask(&z, "nosuchbare.", RecordType::A).rcode, Rcode::Refused);
    assert_eq!(
        ask(&z, "8.8.8.8.in-addr.arpa.", RecordType::PTR).rcode,
        Rcode::Refused
    );
}

#[test]
fn any_gets_one_rrset() {
    let z = zone(EXAMPLE);
    // The apex has an SOA and an NS: ANY gets the SOA alone (RFC 8482).
    let any = ask(&z, "lab.voip.", RecordType::ANY);
    assert_eq!(any.rcode, Rcode::NoError);
    assert_eq!(any.answers.len(), 1);
    assert!(matches!(any.answers[0].data, RData::SOA(_)));
    assert!(any.additionals.is_empty());
    // A host's addresses are one RRset: all of them.
    let host = ask(&z, "vm40ic1.lab.voip.", RecordType::ANY);
    assert_eq!(a_of(&host.answers), vec![Ipv4Addr::new(10, 250, 1, 151)]);
}

#[test]
fn reverse_zones() {
    let z = zone(EXAMPLE);
    let p = ask(&z, "151.1.250.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(p.rcode, Rcode::NoError);
    match &p.answers[0].data {
        RData::PTR(t) => assert_eq!(t.0.to_ascii(), "vm40ic1.lab.voip."),
        other => panic!("{other:?}"),
    }
    // The provision name has no PTR: .151 names the host only.
    let none = ask(&z, "77.0.250.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(none.rcode, Rcode::NxDomain);
    assert!(matches!(none.authority[0].data, RData::SOA(_)));
}

#[test]
fn health_steers_answers_and_never_empties_them() {
    let mut z = zone(EXAMPLE);
    assert!(z.set_health(0, 0, false));
    assert!(!z.set_health(0, 0, false), "no change, no event");
    assert_eq!(
        a_of(&ask(&z, "provision.lab.voip.", RecordType::A).answers),
        vec![Ipv4Addr::new(10, 250, 1, 152)]
    );
    // Equal mode: the failed member stays listed, behind the healthy one.
    assert_eq!(
        srv_of(&ask(&z, "_sip._udp.lab.voip.", RecordType::SRV).answers),
        vec![
            (0, 0, 8060, "vm40ic2.lab.voip.".to_string()),
            (10, 0, 8060, "vm40ic1.lab.voip.".to_string()),
        ]
    );
    // Both down: answer with both rather than nothing.
    z.set_health(0, 1, false);
    assert_eq!(
        a_of(&ask(&z, "provision.lab.voip.", RecordType::A).answers).len(),
        2
    );
    z.set_health(0, 0, true);
    z.set_health(0, 1, true);
    assert_eq!(
        a_of(&ask(&z, "provision.lab.voip.", RecordType::A).answers).len(),
        2
    );
}

#[test]
fn ordered_mode_prefers_the_first_member_until_it_fails() {
    let mut z = zone(&EXAMPLE.replace("mode = \"equal\"", "mode = \"ordered\""));
    let srv = |z: &Zone| srv_of(&ask(z, "_sip._udp.lab.voip.", RecordType::SRV).answers);
    assert_eq!(
        srv(&z),
        vec![
            (10, 0, 8060, "vm40ic1.lab.voip.".to_string()),
            (20, 0, 8060, "vm40ic2.lab.voip.".to_string()),
        ]
    );
    z.set_health(0, 0, false);
    assert_eq!(
        srv(&z),
        vec![
            (10, 0, 8060, "vm40ic2.lab.voip.".to_string()),
            (20, 0, 8060, "vm40ic1.lab.voip.".to_string()),
        ]
    );
}

#[test]
fn lease_names_come_and_go() {
    let mut z = zone(EXAMPLE);
    let ip = Ipv4Addr::new(10, 250, 0, 120);
    z.set_lease_name(ip, Some("Phone-7"), NOW + 60);
    assert_eq!(
        a_of(&ask(&z, "phone-7.lab.voip.", RecordType::A).answers),
        vec![ip]
    );
    let p = ask(&z, "120.0.250.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(p.answers.len(), 1);
    // A lease name never shadows a configured one.
    z.set_lease_name(Ipv4Addr::new(10, 250, 0, 121), Some("vm40ic1"), NOW + 60);
    assert_eq!(
        a_of(&ask(&z, "vm40ic1.lab.voip.", RecordType::A).answers),
        vec![Ipv4Addr::new(10, 250, 1, 151)]
    );
    // Expired: gone. Released (None): gone.
    let later = z.answer(
        &Name::from_ascii("phone-7.lab.voip.").unwrap(),
        RecordType::A,
        Some(ME),
        NOW + 61,
    );
    assert_eq!(later.rcode, Rcode::NxDomain);
    z.set_lease_name(ip, None, 0);
    assert_eq!(
        ask(&z, "phone-7.lab.voip.", RecordType::A).rcode,
        Rcode::NxDomain
    );
    // Names that are not one plain label are ignored.
    z.set_lease_name(ip, Some("a.b"), NOW + 60);
    z.set_lease_name(ip, Some("_x"), NOW + 60);
    assert_eq!(
        ask(&z, "a.b.lab.voip.", RecordType::A).rcode,
        Rcode::NxDomain
    );
}
