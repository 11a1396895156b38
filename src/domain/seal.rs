//! Seals that bind a plan, its approval rules and each approval to a key only rollbot holds
//! (derived from its Slack signing secret). The digest stored beside a plan proves nothing to
//! whoever can write the database's rows; a seal does. The executor checks them before every
//! step starts, and a mismatch stops the run and says so.
use super::{Rollback, UserId};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The keys seals are made and checked with: the first makes them; any checks them, so a
/// rotated signing secret (`new,old`) leaves rollbacks sealed before it valid.
#[derive(Clone)]
pub struct SealKey(Vec<Vec<u8>>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(****)")
    }
}

impl SealKey {
    /// The keys derived from `secrets`, in order (the current one first).
    pub fn derive<'a>(secrets: impl IntoIterator<Item = &'a str>) -> SealKey {
        SealKey(
            secrets
                .into_iter()
                .map(|secret| mac(secret.as_bytes(), &["rollbot plan seal v1"]).into_bytes().to_vec())
                .collect(),
        )
    }

    /// A public tag of this installation (12 hex digits, derived from the current key and telling
    /// nothing about it): stamped on the cards it posts, so it finds its own and no other's.
    pub fn instance_tag(&self) -> String {
        let tag = self.make(&["rollbot installation tag"]);
        tag.chars().take(12).collect()
    }

    /// The seal of a request: its plan's digest, who asked, and the approval rules it froze.
    pub fn request(&self, rollback: &Rollback) -> String {
        self.make(&strs(&request_parts(rollback)))
    }

    /// The seal of one approval of `digest` by `by` through `role`.
    pub fn approval(&self, digest: &str, by: &UserId, role: &str) -> String {
        self.make(&["approval", digest, &by.0, role])
    }

    /// Whether `rollback`'s plan, approval rules and counted approvals are the ones rollbot
    /// sealed; the reason when not.
    pub fn verify(&self, rollback: &Rollback) -> Result<(), String> {
        let digest = rollback.plan.digest();
        if digest != rollback.plan_digest {
            return Err("its plan no longer matches the digest it was approved with".into());
        }
        let Some(seal) = &rollback.seal else {
            return Err(
                "it carries no seal (it was recorded before plans were sealed, or its seal was removed)".into(),
            );
        };
        if !self.checks(&strs(&request_parts(rollback)), seal) {
            return Err("its plan or its approval rules are not the ones rollbot recorded".into());
        }
        for approval in rollback.approvals.iter().filter(|a| a.plan_digest == digest) {
            let sealed = approval
                .seal
                .as_deref()
                .is_some_and(|s| self.checks(&["approval", &digest, &approval.by.0, &approval.role], s));
            if !sealed {
                return Err(format!("the approval by {} is not one rollbot recorded", approval.by.0));
            }
        }
        Ok(())
    }

    fn make(&self, parts: &[&str]) -> String {
        let key = self.0.first().map(Vec::as_slice).unwrap_or_default();
        hex::encode(mac(key, parts).into_bytes())
    }

    fn checks(&self, parts: &[&str], seal: &str) -> bool {
        let Ok(given) = hex::decode(seal) else {
            return false;
        };
        self.0.iter().any(|key| {
            let mut check = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            feed(&mut check, parts);
            check.verify_slice(&given).is_ok()
        })
    }
}

fn request_parts(rollback: &Rollback) -> Vec<String> {
    let rule = if rollback.second_person {
        "two-person"
    } else {
        "one-person"
    };
    ["request", &rollback.plan_digest, &rollback.request.requester.0, rule]
        .into_iter()
        .map(str::to_owned)
        .chain(std::iter::once(rollback.approvals_required.to_string()))
        .chain(rollback.approver_roles.iter().cloned())
        .collect()
}

fn strs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

fn feed(mac: &mut Hmac<Sha256>, parts: &[&str]) {
    for part in parts {
        // Length-prefixed, so no two different lists feed the same bytes.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
}

fn mac(key: &[u8], parts: &[&str]) -> hmac::digest::CtOutput<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    feed(&mut mac, parts);
    mac.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;
    use crate::domain::fixtures::{ON_CALL, Story, actor};

    fn sealed(key: &SealKey) -> Rollback {
        let mut rollback = Story::requested(Severity::High, None).approved().rollback;
        rollback.seal = Some(key.request(&rollback));
        for approval in &mut rollback.approvals {
            approval.seal = Some(key.approval(&approval.plan_digest, &approval.by, &approval.role));
        }
        rollback
    }

    #[test]
    fn a_seal_holds_until_the_plan_its_rules_or_an_approval_change() {
        let key = SealKey::derive(["signing-secret"]);
        let rollback = sealed(&key);
        assert_eq!(key.verify(&rollback), Ok(()));
        assert!(SealKey::derive(["another"]).verify(&rollback).is_err(), "another key");
        assert!(
            SealKey::derive(["new", "signing-secret"]).verify(&rollback).is_ok(),
            "a rotated secret still checks what the old one sealed"
        );

        let mut fewer = rollback.clone();
        fewer.approvals_required = 0;
        assert!(key.verify(&fewer).unwrap_err().contains("approval rules"));
        let mut forged = rollback.clone();
        let mut extra = forged.approvals[0].clone();
        extra.by = actor(ON_CALL).user;
        extra.seal = None;
        forged.approvals.push(extra);
        assert!(key.verify(&forged).unwrap_err().contains("is not one rollbot recorded"));
        let mut unsealed = rollback.clone();
        unsealed.seal = None;
        assert!(key.verify(&unsealed).unwrap_err().contains("carries no seal"));
        let mut stale = rollback;
        stale.plan.steps.pop();
        assert!(key.verify(&stale).unwrap_err().contains("no longer matches"));
    }
}
