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

/// GRANT and REVOKE statements that turn the default privileges into `acl`, grantee by
/// grantee in the order the catalog holds them. A privilege granted by someone other than
/// `owner` is granted as that role (`SET SESSION AUTHORIZATION`), as pg_dump does, so the
/// copy records the same grantor.
pub(super) fn grants(
    q: &Quoter,
    target: &str,
    column: Option<&str>,
    owner: Option<&str>,
    acl: &[String],
    default_acl: &[String],
) -> String {
    let parse = |items: &[String]| -> Vec<AclItem> {
        items.iter().filter_map(|i| parse_aclitem(i)).collect()
    };
    let (want, default) = (parse(acl), parse(default_acl));
    let who = |g: &str| {
        if g.is_empty() {
            "PUBLIC".to_string()
        } else {
            q.ident(g)
        }
    };
    let mut out = String::new();
    let mut revoked = Vec::new();
    for item in &default {
        if !want.contains(item) && !revoked.contains(&item.grantee) {
            out.push_str(&format!(
                "REVOKE ALL ON {target} FROM {};\n",
                who(&item.grantee)
            ));
            revoked.push(item.grantee.clone());
        }
    }
    for item in &want {
        if default.contains(item) && !revoked.contains(&item.grantee) {
            continue;
        }
        let (mut plain, mut with_option) = (Vec::new(), Vec::new());
        let letters: Vec<char> = item.privileges.chars().collect();
        for (i, &letter) in letters.iter().enumerate() {
            let Some(name) = privilege_name(letter) else {
                continue;
            };
            let name = match column {
                Some(column) => format!("{name}({column})"),
                None => name.to_string(),
            };
            if letters.get(i + 1) == Some(&'*') {
                with_option.push(name);
            } else {
                plain.push(name);
            }
        }
        let as_grantor = owner.is_some_and(|o| !item.grantor.is_empty() && item.grantor != o);
        if as_grantor {
            out.push_str(&format!(
                "SET SESSION AUTHORIZATION {};\n",
                q.ident(&item.grantor)
            ));
        }
        let grantee = who(&item.grantee);
        if !plain.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {grantee};\n",
                plain.join(",")
            ));
        }
        if !with_option.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {grantee} WITH GRANT OPTION;\n",
                with_option.join(",")
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
        .query(
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
        let keywords = Quoter {
            keywords: ["user".to_string()].into(),
        };
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
            "REVOKE ALL ON TABLE public.t FROM owner;\nGRANT SELECT ON TABLE public.t TO owner;\n"
        );
    }

    #[test]
    fn a_grant_by_another_role_is_made_as_that_role() {
        let q = Quoter {
            keywords: Default::default(),
        };
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
