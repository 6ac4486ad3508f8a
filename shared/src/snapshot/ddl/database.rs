//! The database itself, as pg_dump writes it for `pg_restore --create`: a `DATABASE` entry
//! (`CREATE DATABASE` with its encoding, locale and tablespace), its comment and grants, and a
//! `DATABASE PROPERTIES` entry (connection limit, template flag, `ALTER DATABASE ... SET` and
//! `ALTER ROLE ... IN DATABASE ... SET`). Restorers use them only when asked to create the
//! database (pg_restore `-C`); a plain dump leaves them out, as `pg_dump -Fp` without `-C` does.

use super::*;
use tokio_postgres::types::Type;

const PG_DATABASE: u32 = 1262;

pub(super) async fn database(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // Catalog columns by version: the locale provider came in 15, ICU rules in 16, and 17
    // renamed the ICU locale to datlocale (shared with the builtin provider).
    let provider = if b.version >= 150000 {
        "d.datlocprovider::text"
    } else {
        "'c'"
    };
    let locale = match b.version {
        v if v >= 170000 => "d.datlocale",
        v if v >= 150000 => "d.daticulocale",
        _ => "NULL::text",
    };
    let rules = if b.version >= 160000 {
        "d.daticurules"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT d.oid, d.datname, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), \
                d.datcollate::text, d.datctype::text, {provider}, {locale}, {rules}, \
                (SELECT spcname FROM pg_tablespace t WHERE t.oid = d.dattablespace), \
                d.datconnlimit, d.datistemplate, shobj_description(d.oid, 'pg_database'), \
                d.datacl::text[], acldefault('d', d.datdba)::text[], \
                ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
                       WHERE s.setdatabase = d.oid AND s.setrole = 0) \
         FROM pg_database d WHERE d.datname = current_database()"
    );
    let r = session.query_catalog_one(&sql, &[]).await?;
    let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
    let quoted = b.q.ident(&name);
    let mut create = format!(
        "CREATE DATABASE {quoted} WITH TEMPLATE = template0 ENCODING = {}",
        dump_literal(&r.get::<_, String>(3))
    );
    // The locale provider came in 15: a dump of 14 restores into 14 without it.
    let provider: String = r.get(6);
    if b.version >= 150000 {
        create.push_str(match provider.as_str() {
            "b" => " LOCALE_PROVIDER = builtin",
            "i" => " LOCALE_PROVIDER = icu",
            _ => " LOCALE_PROVIDER = libc",
        });
    }
    let (collate, ctype): (String, String) = (r.get(4), r.get(5));
    if !collate.is_empty() && collate == ctype {
        create.push_str(&format!(" LOCALE = {}", dump_literal(&collate)));
    } else {
        if !collate.is_empty() {
            create.push_str(&format!(" LC_COLLATE = {}", dump_literal(&collate)));
        }
        if !ctype.is_empty() {
            create.push_str(&format!(" LC_CTYPE = {}", dump_literal(&ctype)));
        }
    }
    if let Some(locale) = r.get::<_, Option<String>>(7) {
        let keyword = if provider == "b" {
            "BUILTIN_LOCALE"
        } else {
            "ICU_LOCALE"
        };
        create.push_str(&format!(" {keyword} = {}", dump_literal(&locale)));
    }
    if let Some(rules) = r.get::<_, Option<String>>(8) {
        create.push_str(&format!(" ICU_RULES = {}", dump_literal(&rules)));
    }
    if let Some(space) = r.get::<_, Option<String>>(9)
        && space != "pg_default"
    {
        create.push_str(&format!(" TABLESPACE = {}", b.q.ident(&space)));
    }
    create.push_str(";\n");
    let mut item = Item::new("DATABASE", &name, Section::PreData, P_DATABASE).of(PG_DATABASE, oid);
    item.owner = Some(owner.clone());
    item.defn = create;
    item.drop = Some(format!("DROP DATABASE {quoted};\n"));
    let at = b.push(item);

    // pg_dump's order, which pg_restore --create keeps: the database, its comment, its
    // grants, its properties.
    let target = format!("DATABASE {quoted}");
    b.comment(at, &target, &target, opt_text(&r, 12));
    let labels = session
        .query_typed(
            "SELECT format('SECURITY LABEL FOR %s ON DATABASE %s IS %s;', quote_ident(provider), $2::text, \
                           quote_literal(label)) \
             FROM pg_shseclabel WHERE classoid = 'pg_database'::regclass AND objoid = $1 ORDER BY provider",
            &[(&oid, Type::OID), (&quoted, Type::TEXT)],
        )
        .await?;
    if !labels.is_empty() {
        let mut item = Item::new("SECURITY LABEL", &target, Section::None, P_DATABASE);
        item.owner = Some(owner.clone());
        item.defn = labels
            .iter()
            .map(|l| format!("{}\n", l.get::<_, String>(0)))
            .collect();
        item.deps.push(Dep::Item(at));
        b.push(item);
    }
    b.acl(at, &target, &target, r.get(13), r.get(14));
    let before: Vec<usize> = (at..b.items.len()).collect();
    for &i in &before[1..] {
        b.items[i].priority = P_DATABASE;
    }

    let mut properties = String::new();
    let mut drop = String::new();
    let limit: i32 = r.get(10);
    if limit != -1 {
        properties.push_str(&format!(
            "ALTER DATABASE {quoted} CONNECTION LIMIT = {limit};\n"
        ));
    }
    if r.get::<_, bool>(11) {
        properties.push_str(&format!("ALTER DATABASE {quoted} IS_TEMPLATE = true;\n"));
        drop.push_str(&format!(
            "UPDATE pg_catalog.pg_database SET datistemplate = false WHERE datname = {};\n",
            dump_literal(&name)
        ));
    }
    for setting in r.get::<_, Vec<String>>(15) {
        properties.push_str(&alter_config(b.q, &target, &setting));
    }
    let role_settings = session
        .query_typed(
            "SELECT r.rolname::text, c.c FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, \
                    unnest(s.setconfig) WITH ORDINALITY AS c(c, n) \
             WHERE s.setdatabase = $1 ORDER BY r.rolname, c.n",
            &[(&oid, Type::OID)],
        )
        .await?;
    for row in role_settings {
        let who = format!("ROLE {} IN {target}", b.q.ident(&row.get::<_, String>(0)));
        properties.push_str(&alter_config(b.q, &who, &row.get::<_, String>(1)));
    }
    if !properties.is_empty() {
        let mut item = Item::new("DATABASE PROPERTIES", &name, Section::PreData, P_DATABASE);
        item.owner = Some(owner);
        item.defn = properties;
        item.drop = Some(drop);
        item.deps.extend(before.into_iter().map(Dep::Item));
        b.push(item);
    }
    Ok(())
}

/// `ALTER <who> SET name TO value;` for one `name=value` of a settings array, as pg_dump
/// writes it: the value a string literal, or for the settings that hold lists of names
/// (`search_path`, ...) each element of the list a literal of its own.
fn alter_config(q: &Keywords, who: &str, setting: &str) -> String {
    let (name, value) = setting.split_once('=').unwrap_or((setting, ""));
    let value = if is_list_setting(name) {
        split_list(value)
            .iter()
            .map(|v| dump_literal(v))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        dump_literal(value)
    };
    format!("ALTER {who} SET {} TO {value};\n", q.ident(name))
}

/// The settings PostgreSQL stores as quoted lists (`GUC_LIST_QUOTE`).
fn is_list_setting(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "local_preload_libraries"
            | "search_path"
            | "session_preload_libraries"
            | "shared_preload_libraries"
            | "temp_tablespaces"
            | "unix_socket_directories"
    )
}

/// The elements of a stored list setting: comma-separated, each bare or double-quoted (a
/// doubled quote inside stands for one), whitespace around them ignored.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut element = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        element.push('"');
                    } else {
                        break;
                    }
                } else {
                    element.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                element.push(c);
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        out.push(element);
        if chars.next().is_none() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_are_split_as_postgresql_stores_them() {
        assert_eq!(split_list(r#""$user", public"#), ["$user", "public"]);
        assert_eq!(split_list(r#""a""b",c"#), ["a\"b", "c"]);
        assert_eq!(split_list(r#""""#), [""]);
        let q = Keywords::default();
        assert_eq!(
            alter_config(&q, "DATABASE d", r#"search_path="$user", public"#),
            "ALTER DATABASE d SET search_path TO '$user', 'public';\n"
        );
        assert_eq!(
            alter_config(&q, "DATABASE d", "app.note=it's=x"),
            "ALTER DATABASE d SET \"app.note\" TO 'it''s=x';\n"
        );
    }
}
