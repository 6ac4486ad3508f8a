//! Schemas, types, collations, extensions, operators and their classes, casts, conversions,
//! languages, transforms, access methods, text search, foreign data, event triggers,
//! publications, and large objects.

use std::collections::BTreeMap;
use tokio_postgres::types::Type;

use super::{USER_SCHEMA, not_extension_member};
use crate::pg::{PgError, Session};

/// `pg_identify_object`'s name for the object `oid` of `catalog`: schema-qualified where the
/// kind lives in a schema, quoted where needed, never an oid (but for casts' and large
/// objects', whose names are their types and oids).
fn identity(catalog: &str, oid: &str) -> String {
    format!("(pg_identify_object('{catalog}'::regclass, {oid}, 0)).identity")
}

/// A sorted, comma-joined rendering of an options array (`{a=1,b=2}`).
fn options(column: &str) -> String {
    format!("(SELECT string_agg(o, ',' ORDER BY o) FROM unnest({column}) o)")
}

pub(super) fn queries(version: i32) -> Vec<String> {
    let locale = match version {
        v if v >= 170000 => "c.colllocale",
        v if v >= 150000 => "c.colliculocale",
        _ => "NULL::text",
    };
    let rules = if version >= 160000 {
        "c.collicurules"
    } else {
        "NULL::text"
    };
    let generated = if version >= 180000 {
        "CASE WHEN p.pubgencols::text = 's' THEN 'generated=stored' END"
    } else {
        "NULL::text"
    };
    let mut queries = vec![
        // Objects dropped with an extension they are not members of (DEPENDS ON EXTENSION).
        "SELECT 'extension dependency ' || o.type || ' ' || o.identity, \
                string_agg(quote_ident(e.extname), ',' ORDER BY e.extname) \
         FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid, \
              pg_identify_object(d.classid, d.objid, d.objsubid) o \
         WHERE d.deptype = 'x' AND d.refclassid = 'pg_extension'::regclass \
         GROUP BY o.type, o.identity"
            .to_string(),
        format!(
            "SELECT 'schema ' || quote_ident(n.nspname), 'exists' FROM pg_namespace n \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("n.oid", "pg_namespace")
        ),
        // Types: enums, domains, composites, ranges, base types (not arrays, not tables' row
        // types, not the multiranges ranges make).
        format!(
            "SELECT 'type ' || format('%I.%I', n.nspname, t.typname), \
                    concat_ws(' ', 'kind=' || t.typtype::text, \
                      CASE t.typtype \
                        WHEN 'e' THEN 'labels=' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder) \
                                                    FROM pg_enum e WHERE e.enumtypid = t.oid) \
                        WHEN 'd' THEN concat_ws(' ', 'base=' || format_type(t.typbasetype, t.typtypmod), \
                                                CASE WHEN t.typnotnull THEN 'not-null' END, \
                                                'default=' || pg_get_expr(t.typdefaultbin, 0)) \
                        WHEN 'c' THEN 'attributes=' || (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) \
                                                          || CASE WHEN a.attcollation <> 0 THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END, \
                                                          ',' ORDER BY a.attnum) \
                                                        FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) \
                        WHEN 'r' THEN (SELECT concat_ws(' ', 'subtype=' || format_type(r.rngsubtype, NULL), \
                                                        'opclass=' || {}, \
                                                        'collation=' || NULLIF(r.rngcollation, 0)::regcollation::text, \
                                                        'canonical=' || NULLIF(r.rngcanonical::oid, 0)::regproc::text, \
                                                        'subdiff=' || NULLIF(r.rngsubdiff::oid, 0)::regproc::text, \
                                                        'multirange=' || format_type(NULLIF(r.rngmultitypid, 0), NULL)) \
                                       FROM pg_range r WHERE r.rngtypid = t.oid) \
                        WHEN 'b' THEN concat_ws(' ', 'input=' || t.typinput::regproc::text, 'output=' || t.typoutput::regproc::text, \
                                                'receive=' || NULLIF(t.typreceive::oid, 0)::regproc::text, \
                                                'send=' || NULLIF(t.typsend::oid, 0)::regproc::text, \
                                                'typmodin=' || NULLIF(t.typmodin::oid, 0)::regproc::text, \
                                                'typmodout=' || NULLIF(t.typmodout::oid, 0)::regproc::text, \
                                                'analyze=' || NULLIF(t.typanalyze::oid, 0)::regproc::text, \
                                                'length=' || t.typlen, 'byval=' || t.typbyval, 'align=' || t.typalign::text, \
                                                'storage=' || t.typstorage::text, 'category=' || t.typcategory::text, \
                                                'preferred=' || t.typispreferred, 'delimiter=' || t.typdelim::text, \
                                                'element=' || format_type(NULLIF(t.typelem, 0), NULL), \
                                                'collatable=' || (t.typcollation <> 0), \
                                                'subscript=' || NULLIF(t.typsubscript::oid, 0)::regproc::text, \
                                                'default=' || quote_literal(t.typdefault)) \
                      END, \
                      CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 \
                           THEN 'collation=' || t.typcollation::regcollation::text END) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r', 'p') AND {USER_SCHEMA} AND {} \
               AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid) \
               AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')",
            identity("pg_opclass", "r.rngsubopc"),
            not_extension_member("t.oid", "pg_type")
        ),
        format!(
            "SELECT 'collation ' || format('%I.%I', n.nspname, c.collname), \
                    concat_ws(' ', 'provider=' || c.collprovider::text, 'deterministic=' || c.collisdeterministic, \
                              CASE WHEN c.collprovider = 'c' THEN 'collate=' || c.collcollate END, \
                              CASE WHEN c.collprovider = 'c' THEN 'ctype=' || c.collctype END, \
                              CASE WHEN c.collprovider <> 'c' THEN 'locale=' || coalesce({locale}, c.collcollate) END, \
                              'rules=' || {rules}) \
             FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("c.oid", "pg_collation")
        ),
        "SELECT 'extension ' || quote_ident(e.extname), \
                concat_ws(' ', 'version=' || e.extversion, 'schema=' || quote_ident(n.nspname), \
                          'config=' || (SELECT string_agg(x::regclass::text, ',' ORDER BY x::regclass::text) \
                                        FROM unnest(e.extconfig) x), \
                          'conditions=' || array_to_string(e.extcondition, ',')) \
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.oid >= 16384"
            .to_string(),
        format!(
            "SELECT 'operator ' || {}, \
                    concat_ws(' ', 'function=' || o.oprcode::regproc::text, \
                              'commutator=' || NULLIF(o.oprcom, 0)::regoperator::text, \
                              'negator=' || NULLIF(o.oprnegate, 0)::regoperator::text, \
                              'restrict=' || NULLIF(o.oprrest::oid, 0)::regproc::text, \
                              'join=' || NULLIF(o.oprjoin::oid, 0)::regproc::text, \
                              CASE WHEN o.oprcanhash THEN 'hashes' END, CASE WHEN o.oprcanmerge THEN 'merges' END) \
             FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
             WHERE o.oprcode <> 0 AND {USER_SCHEMA} AND {}",
            identity("pg_operator", "o.oid"),
            not_extension_member("o.oid", "pg_operator")
        ),
        format!(
            "SELECT 'operator class ' || {}, \
                    concat_ws(' ', 'type=' || format_type(c.opcintype, NULL), 'default=' || c.opcdefault, \
                              'family=' || {}, 'storage=' || format_type(NULLIF(c.opckeytype, 0), NULL)) \
             FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace \
             WHERE {USER_SCHEMA} AND {}",
            identity("pg_opclass", "c.oid"),
            identity("pg_opfamily", "c.opcfamily"),
            not_extension_member("c.oid", "pg_opclass")
        ),
        format!(
            "SELECT 'operator family ' || {}, \
                    concat_ws(' ', \
                      (SELECT string_agg(format('op %s %s %s', o.amopstrategy, o.amopopr::regoperator, \
                                                coalesce('order by ' || {}, 'search')), ',' \
                                         ORDER BY o.amopstrategy, o.amoplefttype, o.amoprighttype) \
                         FROM pg_amop o WHERE o.amopfamily = f.oid), \
                      (SELECT string_agg(format('proc %s (%s,%s) %s', p.amprocnum, format_type(p.amproclefttype, NULL), \
                                                format_type(p.amprocrighttype, NULL), p.amproc::regprocedure), ',' \
                                         ORDER BY p.amprocnum, p.amproclefttype, p.amprocrighttype) \
                         FROM pg_amproc p WHERE p.amprocfamily = f.oid)) \
             FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace \
             WHERE {USER_SCHEMA} AND {}",
            identity("pg_opfamily", "f.oid"),
            identity("pg_opfamily", "NULLIF(o.amopsortfamily, 0)"),
            not_extension_member("f.oid", "pg_opfamily")
        ),
        format!(
            "SELECT 'cast ' || {}, \
                    concat_ws(' ', 'function=' || NULLIF(c.castfunc, 0)::regprocedure::text, \
                              'context=' || c.castcontext::text, 'method=' || c.castmethod::text) \
             FROM pg_cast c WHERE c.oid >= 16384 AND {}",
            identity("pg_cast", "c.oid"),
            not_extension_member("c.oid", "pg_cast")
        ),
        format!(
            "SELECT 'conversion ' || format('%I.%I', n.nspname, c.conname), \
                    concat_ws(' ', 'from=' || pg_encoding_to_char(c.conforencoding), \
                              'to=' || pg_encoding_to_char(c.contoencoding), 'function=' || c.conproc::regproc::text, \
                              'default=' || c.condefault) \
             FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("c.oid", "pg_conversion")
        ),
        format!(
            "SELECT 'language ' || quote_ident(l.lanname), \
                    concat_ws(' ', 'trusted=' || l.lanpltrusted, \
                              'handler=' || NULLIF(l.lanplcallfoid, 0)::regproc::text, \
                              'inline=' || NULLIF(l.laninline, 0)::regproc::text, \
                              'validator=' || NULLIF(l.lanvalidator, 0)::regproc::text) \
             FROM pg_language l WHERE l.oid >= 16384 AND {}",
            not_extension_member("l.oid", "pg_language")
        ),
        format!(
            "SELECT 'transform ' || {}, \
                    concat_ws(' ', 'fromsql=' || NULLIF(t.trffromsql::oid, 0)::regprocedure::text, \
                              'tosql=' || NULLIF(t.trftosql::oid, 0)::regprocedure::text) \
             FROM pg_transform t WHERE {}",
            identity("pg_transform", "t.oid"),
            not_extension_member("t.oid", "pg_transform")
        ),
        format!(
            "SELECT 'access method ' || quote_ident(a.amname), \
                    concat_ws(' ', 'type=' || a.amtype::text, 'handler=' || a.amhandler::regproc::text) \
             FROM pg_am a WHERE a.oid >= 16384 AND {}",
            not_extension_member("a.oid", "pg_am")
        ),
        format!(
            "SELECT 'text search configuration ' || format('%I.%I', n.nspname, c.cfgname), \
                    concat_ws(' ', 'parser=' || {}, \
                      'mapping=' || (SELECT string_agg(tt.alias || ':' || \
                                       (SELECT string_agg(m.mapdict::regdictionary::text, '|' ORDER BY m.mapseqno) \
                                          FROM pg_ts_config_map m WHERE m.mapcfg = c.oid AND m.maptokentype = tt.tokid), \
                                       ',' ORDER BY tt.tokid) \
                                     FROM ts_token_type(c.cfgparser) tt \
                                    WHERE EXISTS (SELECT 1 FROM pg_ts_config_map m WHERE m.mapcfg = c.oid \
                                                     AND m.maptokentype = tt.tokid))) \
             FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace \
             WHERE {USER_SCHEMA} AND {}",
            identity("pg_ts_parser", "c.cfgparser"),
            not_extension_member("c.oid", "pg_ts_config")
        ),
        format!(
            "SELECT 'text search dictionary ' || format('%I.%I', n.nspname, d.dictname), \
                    concat_ws(' ', 'template=' || {}, 'options=' || d.dictinitoption) \
             FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace \
             WHERE {USER_SCHEMA} AND {}",
            identity("pg_ts_template", "d.dicttemplate"),
            not_extension_member("d.oid", "pg_ts_dict")
        ),
        format!(
            "SELECT 'text search parser ' || format('%I.%I', n.nspname, p.prsname), \
                    concat_ws(' ', p.prsstart::regproc::text, p.prstoken::regproc::text, p.prsend::regproc::text, \
                              NULLIF(p.prsheadline::oid, 0)::regproc::text, p.prslextype::regproc::text) \
             FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("p.oid", "pg_ts_parser")
        ),
        format!(
            "SELECT 'text search template ' || format('%I.%I', n.nspname, t.tmplname), \
                    concat_ws(' ', NULLIF(t.tmplinit::oid, 0)::regproc::text, t.tmpllexize::regproc::text) \
             FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("t.oid", "pg_ts_template")
        ),
        format!(
            "SELECT 'foreign data wrapper ' || quote_ident(w.fdwname), \
                    concat_ws(' ', 'handler=' || NULLIF(w.fdwhandler, 0)::regproc::text, \
                              'validator=' || NULLIF(w.fdwvalidator, 0)::regproc::text, \
                              'options=' || {}) \
             FROM pg_foreign_data_wrapper w WHERE {}",
            options("w.fdwoptions"),
            not_extension_member("w.oid", "pg_foreign_data_wrapper")
        ),
        format!(
            "SELECT 'foreign server ' || quote_ident(s.srvname), \
                    concat_ws(' ', 'wrapper=' || quote_ident(w.fdwname), 'type=' || s.srvtype, \
                              'version=' || s.srvversion, 'options=' || {}) \
             FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE {}",
            options("s.srvoptions"),
            not_extension_member("s.oid", "pg_foreign_server")
        ),
        // A user mapping's option values can be passwords: their names only.
        "SELECT 'user mapping ' || CASE WHEN u.umuser = 0 THEN 'public' ELSE quote_ident(u.usename) END \
                || ' server ' || quote_ident(u.srvname), \
                'options=' || coalesce((SELECT string_agg(split_part(o, '=', 1), ',' ORDER BY split_part(o, '=', 1)) \
                                         FROM unnest(u.umoptions) o), '') \
         FROM pg_user_mappings u"
            .to_string(),
        format!(
            "SELECT 'foreign table ' || format('%I.%I', n.nspname, c.relname), \
                    concat_ws(' ', 'server=' || quote_ident(s.srvname), 'options=' || {}) \
             FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_foreign_server s ON s.oid = f.ftserver \
             WHERE {USER_SCHEMA} AND {}",
            options("f.ftoptions"),
            not_extension_member("c.oid", "pg_class")
        ),
        format!(
            "SELECT 'event trigger ' || quote_ident(e.evtname), \
                    concat_ws(' ', 'event=' || e.evtevent, 'function=' || e.evtfoid::regproc::text, \
                              'tags=' || (SELECT string_agg(t, ',' ORDER BY t) FROM unnest(e.evttags) t), \
                              'enabled=' || e.evtenabled::text) \
             FROM pg_event_trigger e WHERE {}",
            not_extension_member("e.oid", "pg_event_trigger")
        ),
        format!(
            "SELECT 'publication ' || quote_ident(p.pubname), \
                    concat_ws(' ', 'all-tables=' || p.puballtables, 'insert=' || p.pubinsert, 'update=' || p.pubupdate, \
                              'delete=' || p.pubdelete, 'truncate=' || p.pubtruncate, 'via-root=' || p.pubviaroot, \
                              {generated}) \
             FROM pg_publication p"
        ),
    ];
    if version >= 150000 {
        queries.push(
            "SELECT 'publication table ' || quote_ident(p.pubname) || ' ' || format('%I.%I', n.nspname, c.relname), \
                    concat_ws(' ', 'columns=' || (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.n) \
                                                  FROM unnest(r.prattrs::int2[]) WITH ORDINALITY AS k(attnum, n) \
                                                  JOIN pg_attribute a ON a.attrelid = r.prrelid AND a.attnum = k.attnum), \
                              'where=' || pg_get_expr(r.prqual, r.prrelid), 'member') \
             FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
             JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                .to_string(),
        );
        queries.push(
            "SELECT 'publication schema ' || quote_ident(p.pubname) || ' ' || quote_ident(n.nspname), 'member' \
             FROM pg_publication_namespace s JOIN pg_publication p ON p.oid = s.pnpubid \
             JOIN pg_namespace n ON n.oid = s.pnnspid"
                .to_string(),
        );
    } else {
        queries.push(
            "SELECT 'publication table ' || quote_ident(p.pubname) || ' ' || format('%I.%I', n.nspname, c.relname), 'member' \
             FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
             JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                .to_string(),
        );
    }
    queries
}

/// How many large objects there are and a digest of their oids and contents, computed in the
/// server (each object's content hashed on its own, then the list hashed).
pub(super) async fn large_objects(session: &Session) -> Result<BTreeMap<String, String>, PgError> {
    let row = session
        .query_catalog_one(
            "SELECT count(*), md5(string_agg(m.oid::text || ':' || md5(lo_get(m.oid)), ',' ORDER BY m.oid)) \
             FROM pg_largeobject_metadata m",
            &[],
        )
        .await?;
    let count: i64 = row.get(0);
    let mut out = BTreeMap::new();
    if count > 0 {
        out.insert(
            "large objects count".to_string(),
            format!("{count} content md5 {}", row.get::<_, String>(1)),
        );
    }
    Ok(out)
}

/// Subscriptions: publications, slot and the options a dump carries (not whether one is
/// enabled: a restored subscription is disabled until someone enables it, as pg_dump makes
/// it; not its connection string, which may hold a password). Options are read where this
/// role may read them and the server has them, and shown only where they differ from the
/// default, so that servers of different versions compare alike.
pub(super) async fn subscriptions(
    session: &Session,
    version: i32,
) -> Result<BTreeMap<String, String>, PgError> {
    // Before 16 a subscription's changes were applied as its owner: what 16+ calls
    // run_as_owner (pg_dump writes it so for older servers).
    let run_as_owner = if version < 160000 {
        ", 'run_as_owner'"
    } else {
        ""
    };
    const OPTIONS: &[(&str, &str, i32)] = &[
        (
            "subbinary",
            "CASE WHEN s.subbinary THEN 'binary' END",
            140000,
        ),
        (
            "substream",
            "'streaming=' || CASE s.substream::text WHEN 'true' THEN 't' WHEN 'false' THEN 'f' \
             ELSE s.substream::text END",
            140000,
        ),
        (
            "subslotname",
            "'slot=' || coalesce(quote_literal(s.subslotname::text), 'NONE')",
            140000,
        ),
        (
            "subsynccommit",
            "NULLIF('synchronous_commit=' || s.subsynccommit, 'synchronous_commit=off')",
            140000,
        ),
        (
            "subtwophasestate",
            "CASE WHEN s.subtwophasestate <> 'd' THEN 'two_phase' END",
            150000,
        ),
        (
            "subdisableonerr",
            "CASE WHEN s.subdisableonerr THEN 'disable_on_error' END",
            150000,
        ),
        (
            "subpasswordrequired",
            "CASE WHEN NOT s.subpasswordrequired THEN 'password_not_required' END",
            160000,
        ),
        (
            "subrunasowner",
            "CASE WHEN s.subrunasowner THEN 'run_as_owner' END",
            160000,
        ),
        (
            "suborigin",
            "NULLIF('origin=' || s.suborigin, 'origin=any')",
            160000,
        ),
        (
            "subfailover",
            "CASE WHEN s.subfailover THEN 'failover' END",
            170000,
        ),
    ];
    let known: Vec<String> = OPTIONS
        .iter()
        .filter(|(_, _, since)| version >= *since)
        .map(|(column, _, _)| column.to_string())
        .collect();
    let readable: Vec<String> = session
        .query_typed(
            "SELECT c FROM unnest($1::text[]) c WHERE has_column_privilege('pg_subscription', c, 'SELECT')",
            &[(&known, Type::TEXT_ARRAY)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let options: Vec<&str> = OPTIONS
        .iter()
        .filter(|(column, _, _)| readable.iter().any(|r| r == column))
        .map(|(_, expr, _)| *expr)
        .collect();
    let sql = format!(
        "SELECT 'subscription ' || quote_ident(s.subname), \
                concat_ws(' ', 'publications=' || array_to_string(ARRAY(SELECT quote_ident(p) \
                            FROM unnest(s.subpublications) p ORDER BY 1), ','){}{}{}) \
         FROM pg_subscription s \
         WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        if options.is_empty() { "" } else { ", " },
        options.join(", "),
        run_as_owner
    );
    Ok(session
        .query_catalog(&sql, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
