//! Privileges: aclitem arrays turned into the GRANT and REVOKE statements that rebuild them.

use super::*;

/// One aclitem's text form, `grantee=privileges/grantor`, split: grantee (`""` for PUBLIC),
/// the privilege letters (a `*` after a letter means with grant option) and the grantor.
pub(super) fn parse_aclitem(item: &str) -> Option<AclItem> {
    let (grantee, rest) = role_name(item)?;
    let rest = rest.strip_prefix('=')?;
    let (privileges, grantor) = match rest.split_once('/') {
        Some((privileges, grantor)) => (privileges, role_name(grantor)?.0),
        None => (rest, String::new()),
    };
    Some(AclItem {
        grantee,
        privileges: privileges.to_string(),
        grantor,
    })
}

/// One aclitem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AclItem {
    pub grantee: String,
    pub privileges: String,
    pub grantor: String,
}

/// A role name at the start of `text` as aclitem prints it (double-quoted when it needs to
/// be), and what follows it.
fn role_name(text: &str) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(['=', '/']).unwrap_or(text.len());
        return Some((text[..end].to_string(), &text[end..]));
    };
    let mut name = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            name.push(c);
        } else if quoted[i + 1..].starts_with('"') {
            name.push('"');
            chars.next();
        } else {
            return Some((name, &quoted[i + 1..]));
        }
    }
    None
}

pub(super) fn privilege_name(letter: char) -> Option<&'static str> {
    Some(match letter {
        'r' => "SELECT",
        'w' => "UPDATE",
        'a' => "INSERT",
        'd' => "DELETE",
        'D' => "TRUNCATE",
        'x' => "REFERENCES",
        't' => "TRIGGER",
        'X' => "EXECUTE",
        'U' => "USAGE",
        'C' => "CREATE",
        'c' => "CONNECT",
        'T' => "TEMPORARY",
        'm' => "MAINTAIN",
        's' => "SET",
        'A' => "ALTER SYSTEM",
        _ => return None,
    })
}

/// A grantee's privileges from one grantor: each letter with whether it carries the grant
/// option, in the order the aclitem printed them.
type Privileges = Vec<(char, bool)>;

/// The items of an ACL as `(grantee, grantor) -> privileges`, items of the same pair merged,
/// in the catalog's order.
fn by_pair(items: &[String]) -> Vec<((String, String), Privileges)> {
    let mut out: Vec<((String, String), Privileges)> = Vec::new();
    for item in items.iter().filter_map(|i| parse_aclitem(i)) {
        let letters: Vec<char> = item.privileges.chars().collect();
        let privileges: Privileges = letters
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != '*')
            .map(|(i, &c)| (c, letters.get(i + 1) == Some(&'*')))
            .collect();
        let pair = (item.grantee, item.grantor);
        match out.iter_mut().find(|(p, _)| *p == pair) {
            Some((_, existing)) => existing.extend(privileges),
            None => out.push((pair, privileges)),
        }
    }
    out
}

/// GRANT and REVOKE statements that turn the default privileges into `acl`, grantee by
/// grantee in the order the catalog holds them, privilege by privilege as pg_dump writes them
/// (a `REVOKE ALL` would also take away what a newer server grants by default, such as
/// MAINTAIN on tables in 17). A privilege granted by someone other than `owner` is granted as
/// that role (`SET SESSION AUTHORIZATION`), as pg_dump does, so the copy records the same
/// grantor.
pub(super) fn grants(
    q: &Keywords,
    target: &str,
    column: Option<&str>,
    owner: Option<&str>,
    acl: &[String],
    default_acl: &[String],
) -> String {
    let (want, default) = (by_pair(acl), by_pair(default_acl));
    let who = |g: &str| {
        if g.is_empty() {
            "PUBLIC".to_string()
        } else {
            q.ident(g)
        }
    };
    let names = |privileges: &[char]| -> String {
        privileges
            .iter()
            .filter_map(|&c| privilege_name(c))
            .map(|name| match column {
                Some(column) => format!("{name}({column})"),
                None => name.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = String::new();
    for (pair, had) in &default {
        let grantee = who(&pair.0);
        let kept = want.iter().find(|(p, _)| p == pair).map(|(_, k)| k);
        let Some(kept) = kept else {
            out.push_str(&format!("REVOKE ALL ON {target} FROM {grantee};\n"));
            continue;
        };
        let lost: Vec<char> = had
            .iter()
            .filter(|(c, _)| !kept.iter().any(|(k, _)| k == c))
            .map(|(c, _)| *c)
            .collect();
        let option_lost: Vec<char> = had
            .iter()
            .filter(|(c, option)| *option && kept.iter().any(|(k, o)| k == c && !o))
            .map(|(c, _)| *c)
            .collect();
        if !lost.is_empty() {
            out.push_str(&format!(
                "REVOKE {} ON {target} FROM {grantee};\n",
                names(&lost)
            ));
        }
        if !option_lost.is_empty() {
            out.push_str(&format!(
                "REVOKE GRANT OPTION FOR {} ON {target} FROM {grantee};\n",
                names(&option_lost)
            ));
        }
    }
    for (pair, privileges) in &want {
        let had = default
            .iter()
            .find(|(p, _)| p == pair)
            .map(|(_, h)| h.as_slice())
            .unwrap_or_default();
        // What the default did not give: a privilege (kept by a REVOKE GRANT OPTION when
        // only its option went), or its grant option.
        let new = |with_option: bool| -> Vec<char> {
            privileges
                .iter()
                .filter(|(_, o)| *o == with_option)
                .filter(|(c, o)| {
                    if *o {
                        !had.contains(&(*c, true))
                    } else {
                        !had.iter().any(|(h, _)| h == c)
                    }
                })
                .map(|(c, _)| *c)
                .collect()
        };
        let (plain, with_option) = (new(false), new(true));
        if plain.is_empty() && with_option.is_empty() {
            continue;
        }
        let grantor = &pair.1;
        let as_grantor = owner.is_some_and(|o| !grantor.is_empty() && grantor != o);
        if as_grantor {
            out.push_str(&format!(
                "SET SESSION AUTHORIZATION {};\n",
                q.ident(grantor)
            ));
        }
        let grantee = who(&pair.0);
        if !plain.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {grantee};\n",
                names(&plain)
            ));
        }
        if !with_option.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {grantee} WITH GRANT OPTION;\n",
                names(&with_option)
            ));
        }
        if as_grantor {
            out.push_str("RESET SESSION AUTHORIZATION;\n");
        }
    }
    out
}

/// `ALTER DEFAULT PRIVILEGES` (pg_default_acl): what a role's future objects, everywhere or in
/// one schema, are granted. Everywhere, the statements start from the kind's built-in
/// default; in a schema, from nothing (schema entries only add).
pub(super) async fn default_privileges(
    session: &Session,
    b: &mut Builder<'_>,
) -> Result<(), SnapshotError> {
    let rows = session
        .query_catalog(
            "SELECT d.oid, pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype::text, \
                    d.defaclacl::text[], \
                    CASE WHEN d.defaclnamespace = 0 \
                         THEN acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' WHEN 'T' THEN 'T' \
                                         WHEN 'n' THEN 'n' WHEN 'f' THEN 'f' WHEN 'L' THEN 'L' ELSE 'r' END::\"char\", d.defaclrole)::text[] \
                         ELSE '{}'::text[] END, \
                    d.defaclnamespace \
             FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace \
             ORDER BY 2, 3 NULLS FIRST, 4",
            &[],
        )
        .await?;
    for r in rows {
        let (oid, role, schema, kind): (u32, String, Option<String>, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if let Some(schema) = &schema
            && !b.filter.others_wanted(schema)
        {
            continue;
        }
        if schema.is_none() && !b.filter.tables.is_empty() {
            continue;
        }
        let objects = match kind.as_str() {
            "r" => "TABLES",
            "S" => "SEQUENCES",
            "f" => "FUNCTIONS",
            "T" => "TYPES",
            "n" => "SCHEMAS",
            "L" => "LARGE OBJECTS",
            other => {
                return Err(SnapshotError::Unsupported(vec![format!(
                    "default privileges of {role} on objects of kind {other:?}"
                )]));
            }
        };
        let acl: Vec<String> = r.get(4);
        let default: Vec<String> = r.get(5);
        let statements = grants(b.q, objects, None, None, &acl, &default);
        if statements.is_empty() {
            continue;
        }
        let prefix = match &schema {
            Some(s) => format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ",
                b.q.ident(&role),
                b.q.ident(s)
            ),
            None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {} ", b.q.ident(&role)),
        };
        let mut item = Item::new(
            "DEFAULT ACL",
            format!("DEFAULT PRIVILEGES FOR {objects}"),
            Section::None,
            P_DEFAULT_ACL,
        )
        .of(PG_DEFAULT_ACL, oid);
        item.namespace = schema.clone();
        item.owner = Some(role);
        item.defn = statements
            .lines()
            .map(|l| format!("{prefix}{l}\n"))
            .collect();
        if schema.is_some() {
            item.deps.push(Dep::Object((PG_NAMESPACE, r.get(6))));
        }
        b.push(item);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(grantee: &str, privileges: &str, grantor: &str) -> AclItem {
        AclItem {
            grantee: grantee.into(),
            privileges: privileges.into(),
            grantor: grantor.into(),
        }
    }

    #[test]
    fn aclitems_parse_with_quoted_names_and_public() {
        assert_eq!(
            parse_aclitem("alice=arwdDxt/alice"),
            Some(item("alice", "arwdDxt", "alice"))
        );
        assert_eq!(parse_aclitem("=U/alice"), Some(item("", "U", "alice")));
        assert_eq!(
            parse_aclitem(r#""odd ""one"""=r*w/"al/ice""#),
            Some(item(r#"odd "one""#, "r*w", "al/ice"))
        );
        assert_eq!(parse_aclitem("bad"), None);
    }

    #[test]
    fn grants_revoke_only_what_differs_from_the_default() {
        let keywords = Keywords::new(["user".to_string()]);
        let default = vec!["owner=arwdDxt/owner".to_string()];
        let acl = vec![
            "owner=arwdDxt/owner".to_string(),
            "user=r*w/owner".to_string(),
        ];
        assert_eq!(
            grants(
                &keywords,
                "TABLE public.t",
                None,
                Some("owner"),
                &acl,
                &default
            ),
            "GRANT UPDATE ON TABLE public.t TO \"user\";\n\
             GRANT SELECT ON TABLE public.t TO \"user\" WITH GRANT OPTION;\n"
        );
        let revoked = vec!["owner=r/owner".to_string()];
        assert_eq!(
            grants(
                &keywords,
                "TABLE public.t",
                None,
                Some("owner"),
                &revoked,
                &default
            ),
            "REVOKE INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER ON TABLE public.t FROM owner;\n"
        );
        // Every privilege gone: all of them revoked; a grant option taken back alone.
        assert_eq!(
            grants(
                &keywords,
                "TABLE public.t",
                None,
                Some("owner"),
                &[],
                &default
            ),
            "REVOKE ALL ON TABLE public.t FROM owner;\n"
        );
        let granted = vec!["owner=arwdDxt/owner".to_string(), "x=r*/owner".to_string()];
        let narrowed = vec!["owner=arwdDxt/owner".to_string(), "x=r/owner".to_string()];
        assert_eq!(
            grants(
                &keywords,
                "TABLE t",
                None,
                Some("owner"),
                &narrowed,
                &granted
            ),
            "REVOKE GRANT OPTION FOR SELECT ON TABLE t FROM x;\n"
        );
        // Items of one grantee and grantor merge (the public schema's default is built so).
        let split = vec!["owner=U/owner".to_string(), "owner=C/owner".to_string()];
        let merged = vec!["owner=UC/owner".to_string()];
        assert_eq!(
            grants(
                &keywords,
                "SCHEMA public",
                None,
                Some("owner"),
                &merged,
                &split
            ),
            ""
        );
    }

    #[test]
    fn a_grant_by_another_role_is_made_as_that_role() {
        let q = Keywords::default();
        let default = vec!["owner=arwdDxt/owner".to_string()];
        let acl = vec![
            "owner=arwdDxt/owner".to_string(),
            "helper=r*/owner".to_string(),
            "reader=r/helper".to_string(),
        ];
        assert_eq!(
            grants(&q, "TABLE t", None, Some("owner"), &acl, &default),
            "GRANT SELECT ON TABLE t TO helper WITH GRANT OPTION;\n\
             SET SESSION AUTHORIZATION helper;\nGRANT SELECT ON TABLE t TO reader;\n\
             RESET SESSION AUTHORIZATION;\n"
        );
    }
}
