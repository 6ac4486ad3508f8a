//! The custom-format archive code against the real tools: archives ferry writes are listed and
//! restored by `pg_restore` (also in parallel), and ferry reads what `pg_dump -Fc` writes.

use std::process::Command;

use bytes::Bytes;
use ferry::archive::{
    Compression, CreatedAt, Header, Layout, Offset, Section, TocEntry, Version,
    custom::{
        DataBlock, DataFile, Reader, decode_data_file, directory_data_name, directory_file_suffix,
        header_bytes, header_bytes_for, toc_bytes, toc_bytes_for,
    },
};
use ferry_tests::{pg::SUPERUSER, shared_pg};
use futures::TryStreamExt;

const SOURCE: &str = r#"
CREATE TABLE items (id int NOT NULL, label text, price numeric, tags text[], raw bytea);
INSERT INTO items SELECT i, 'item ' || i, i * 1.5, ARRAY['a', 'b c'], '\x00ff'::bytea FROM generate_series(1, 20000) i;
INSERT INTO items VALUES (-1, E'tab\there\nnew line \\ backslash', 'NaN', '{}', ''), (-2, '\.', NULL, NULL, NULL), (-3, '', 0, ARRAY[NULL], NULL);
ALTER TABLE items ADD CONSTRAINT items_pkey PRIMARY KEY (id);
CREATE INDEX items_label_idx ON items (label);
"#;

/// The COPY text of `items`, as the server writes it, with pg_dump's terminator.
async fn copy_out(dbname: &str) -> Vec<u8> {
    let config = shared_pg().config(dbname, ferry::pg::SslMode::Disable);
    let session = ferry::pg::connect(&config).await.unwrap();
    let stream = session
        .copy_out("COPY public.items (id, label, price, tags, raw) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    let mut data = chunks.concat();
    data.extend_from_slice(b"\\.\n\n\n");
    data
}

fn entries() -> Vec<TocEntry> {
    let mut encoding = TocEntry::new(1, "ENCODING", "ENCODING", Section::PreData);
    encoding.defn = Some("SET client_encoding = 'UTF8';\n".into());
    let mut stdstrings = TocEntry::new(2, "STDSTRINGS", "STDSTRINGS", Section::PreData);
    stdstrings.defn = Some("SET standard_conforming_strings = 'on';\n".into());
    let mut searchpath = TocEntry::new(3, "SEARCHPATH", "SEARCHPATH", Section::PreData);
    searchpath.defn = Some("SELECT pg_catalog.set_config('search_path', '', false);\n".into());
    let mut table = TocEntry::new(4, "TABLE", "items", Section::PreData);
    table.table_oid = "1259".into();
    table.oid = "16400".into();
    table.defn = Some(
        "CREATE TABLE public.items (\n    id integer NOT NULL,\n    label text,\n    price numeric,\n    tags text[],\n    raw bytea\n);\n"
            .into(),
    );
    table.drop_stmt = Some("DROP TABLE public.items;\n".into());
    table.namespace = Some("public".into());
    table.tablespace = Some(String::new());
    table.tableam = Some("heap".into());
    table.owner = Some(SUPERUSER.into());
    let mut data = TocEntry::new(5, "TABLE DATA", "items", Section::Data);
    data.table_oid = "0".into();
    data.oid = "16400".into();
    data.had_dumper = true;
    data.offset = Offset::NotSet;
    data.copy_stmt = Some("COPY public.items (id, label, price, tags, raw) FROM stdin;\n".into());
    data.namespace = Some("public".into());
    data.owner = Some(SUPERUSER.into());
    data.dependencies = vec![4];
    let mut pkey = TocEntry::new(6, "CONSTRAINT", "items items_pkey", Section::PostData);
    pkey.table_oid = "2606".into();
    pkey.defn = Some(
        "ALTER TABLE ONLY public.items\n    ADD CONSTRAINT items_pkey PRIMARY KEY (id);\n".into(),
    );
    pkey.drop_stmt = Some("ALTER TABLE ONLY public.items DROP CONSTRAINT items_pkey;\n".into());
    pkey.namespace = Some("public".into());
    pkey.owner = Some(SUPERUSER.into());
    pkey.dependencies = vec![4];
    let mut index = TocEntry::new(7, "INDEX", "items_label_idx", Section::PostData);
    index.table_oid = "1259".into();
    index.defn = Some("CREATE INDEX items_label_idx ON public.items USING btree (label);\n".into());
    index.drop_stmt = Some("DROP INDEX public.items_label_idx;\n".into());
    index.namespace = Some("public".into());
    index.tablespace = Some(String::new());
    index.owner = Some(SUPERUSER.into());
    index.dependencies = vec![4];
    vec![encoding, stdstrings, searchpath, table, data, pkey, index]
}

fn header(compression: Compression) -> Header {
    Header {
        version: Version::V1_14,
        int_size: 4,
        off_size: 8,
        compression,
        created: CreatedAt::from_system_time(std::time::SystemTime::now()),
        database: "source".into(),
        server_version: "15".into(),
        dumper_version: format!("ferry {}", ferry::VERSION),
    }
}

/// Restores `archive` with `pg_restore -j JOBS` into a new database and returns its name.
fn pg_restore_into_new_database(archive: &std::path::Path, jobs: &str) -> String {
    let pg = shared_pg();
    let target = pg.create_database("archive_dst");
    run(Command::new(pg.bin("pg_restore"))
        .args(["--exit-on-error", "--no-owner", "-j", jobs])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            &target,
        ])
        .arg(archive));
    target
}

/// Compares two databases of the shared server with ferry's own validation.
async fn compare_databases(source: &str, target: &str) -> ferry::validate::Comparison {
    let pg = shared_pg();
    let options = ferry::validate::Options {
        checksums: true,
        jobs: 1,
    };
    let profile = |db: &str| ferry::pg::PgConfig::parse(&pg.url(db)).unwrap();
    let want = ferry::validate::profile(&profile(source), options)
        .await
        .unwrap();
    let got = ferry::validate::profile(&profile(target), options)
        .await
        .unwrap();
    ferry::validate::compare(&want.into(), &got, ferry::validate::Scope::default())
}

fn write_archive(copy_text: &[u8], compression: Compression) -> Vec<u8> {
    let header = header(compression);
    let mut out = header_bytes(&header).unwrap();
    out.extend(toc_bytes(Version::V1_14, &entries()));
    let (mut block, head) = DataBlock::start(5, compression).unwrap();
    out.extend(head);
    // Feed it in uneven pieces, as a COPY stream arrives.
    for piece in copy_text.chunks(7_777) {
        out.extend(block.write(piece));
    }
    out.extend(block.finish());
    out
}

fn run(command: &mut Command) -> String {
    let out = command
        .env("PGPASSWORD", shared_pg().password())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn pg_restore_lists_and_restores_what_ferry_writes() {
    let pg = shared_pg();
    let source = pg.create_database("archive_src");
    pg.psql(&source, SOURCE);
    let copy_text = copy_out(&source).await;
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("archive"));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, compression) in [
        ("gzip", Compression::Gzip { level: None }),
        ("none", Compression::None),
    ] {
        let path = dir.join(format!("{name}.dump"));
        std::fs::write(&path, write_archive(&copy_text, compression)).unwrap();

        let listing = run(Command::new(pg.bin("pg_restore")).arg("-l").arg(&path));
        for line in [
            "Format: CUSTOM",
            "TABLE public items",
            "TABLE DATA public items",
            "CONSTRAINT public items items_pkey",
            "INDEX public items_label_idx",
        ] {
            assert!(listing.contains(line), "{line:?} missing from:\n{listing}");
        }
        for jobs in ["1", "2"] {
            // The restored copy is the source, by ferry's own validation.
            let target = pg_restore_into_new_database(&path, jobs);
            let comparison = compare_databases(&source, &target).await;
            assert!(comparison.matches(), "{name}, -j {jobs}: {comparison:?}");
            assert_eq!(comparison.rows_compared, 20_003);
        }
    }
}

#[tokio::test]
async fn ferry_reads_what_pg_dump_writes() {
    let pg = shared_pg();
    let source = pg.create_database("archive_pgdump");
    pg.psql(&source, SOURCE);
    let path = ferry_tests::process::scratch()
        .join(format!("{}.dump", ferry_tests::unique_name("pgdump")));
    run(Command::new(pg.bin("pg_dump"))
        .args([
            "-Fc",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-f",
        ])
        .arg(&path)
        .arg(&source));
    let bytes = std::fs::read(&path).unwrap();
    let (mut reader, toc) = Reader::open(&bytes[..]).unwrap();
    assert_eq!(
        reader.header.version,
        Version::V1_14,
        "pg_dump 15 writes 1.14"
    );
    assert!(matches!(
        reader.header.compression,
        Compression::Gzip { .. }
    ));
    assert_eq!(reader.header.database, source);
    let data = toc
        .iter()
        .find(|e| e.desc == "TABLE DATA" && e.tag == "items")
        .expect("items data");
    assert!(
        data.copy_stmt
            .as_deref()
            .unwrap()
            .starts_with("COPY public.items")
    );
    let table = toc
        .iter()
        .find(|e| e.desc == "TABLE" && e.tag == "items")
        .unwrap();
    assert_eq!(data.dependencies.first(), Some(&table.dump_id));
    assert!(toc.iter().any(|e| e.desc == "INDEX"
        && e.tag == "items_label_idx"
        && e.section == Section::PostData));
    let mut found = None;
    while let Some(id) = reader.next_block().unwrap() {
        let mut out = Vec::new();
        reader.read_block_data(&mut out).unwrap();
        if id == data.dump_id {
            found = Some(out);
        }
    }
    let found = found.expect("the data block of items");
    assert_eq!(
        found,
        copy_out(&source).await,
        "the decompressed block is the COPY text"
    );
}

/// A directory archive: `toc.dat` and one data file per table.
fn write_directory(dir: &std::path::Path, copy_text: &[u8], compression: Compression) {
    std::fs::create_dir_all(dir).unwrap();
    let header = header(compression);
    let mut toc = header_bytes_for(&header, Layout::Directory).unwrap();
    toc.extend(toc_bytes_for(Version::V1_14, &entries(), Layout::Directory));
    std::fs::write(dir.join("toc.dat"), toc).unwrap();
    let mut file = DataFile::new(compression).unwrap();
    let mut bytes = Vec::new();
    for piece in copy_text.chunks(9_999) {
        bytes.extend(file.write(piece));
    }
    bytes.extend(file.finish());
    let name = format!(
        "{}{}",
        directory_data_name(5),
        directory_file_suffix(compression)
    );
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[tokio::test]
async fn directory_archives_both_ways() {
    let pg = shared_pg();
    let source = pg.create_database("archive_dir_src");
    pg.psql(&source, SOURCE);
    let copy_text = copy_out(&source).await;
    let scratch = ferry_tests::process::scratch().join(ferry_tests::unique_name("dirarchive"));
    for (name, compression) in [
        ("gzip", Compression::Gzip { level: None }),
        ("none", Compression::None),
    ] {
        let dir = scratch.join(name);
        write_directory(&dir, &copy_text, compression);
        let listing = run(Command::new(pg.bin("pg_restore")).arg("-l").arg(&dir));
        assert!(
            listing.contains("Format: DIRECTORY") && listing.contains("TABLE DATA public items"),
            "{listing}"
        );
        let target = pg_restore_into_new_database(&dir, "2");
        let comparison = compare_databases(&source, &target).await;
        assert!(comparison.matches(), "{name}: {comparison:?}");
    }

    // And what pg_dump -Fd writes, read back by ferry.
    let dumped = scratch.join("pg_dump");
    run(Command::new(pg.bin("pg_dump"))
        .args([
            "-Fd",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-f",
        ])
        .arg(&dumped)
        .arg(&source));
    let toc = std::fs::read(dumped.join("toc.dat")).unwrap();
    let (reader, entries) = Reader::open(&toc[..]).unwrap();
    assert_eq!(reader.layout, Layout::Directory);
    let data = entries
        .iter()
        .find(|e| e.desc == "TABLE DATA" && e.tag == "items")
        .unwrap();
    let file = data.file.clone().expect("a data file name");
    let on_disk = [file.clone(), format!("{file}.gz")]
        .into_iter()
        .find(|f| dumped.join(f).exists())
        .expect("the data file exists");
    let mut out = Vec::new();
    decode_data_file(
        &on_disk,
        std::fs::File::open(dumped.join(&on_disk)).unwrap(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, copy_text);
}
