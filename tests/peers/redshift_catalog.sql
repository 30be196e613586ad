-- The Redshift catalog surface idgraph reads, on PostgreSQL: views over PostgreSQL's own
-- catalog where it holds the same facts, small tables a test fills where it has none.
-- A login whose search_path starts with redshift_catalog (then pg_catalog, named
-- explicitly so that these shadow it) sees a Redshift, as far as idgraph can tell.

CREATE SCHEMA redshift_catalog;

-- What Redshift's version() answers: idgraph looks for "Redshift".
CREATE FUNCTION redshift_catalog.version() RETURNS text LANGUAGE sql IMMUTABLE AS
$$SELECT 'PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467'$$;

-- pg_proc with prokind (Redshift's pg_proc has none).
CREATE VIEW redshift_catalog.pg_proc_info AS
SELECT p.oid AS prooid, p.* FROM pg_catalog.pg_proc p;

-- pg_attribute with the column ACLs (Redshift's pg_attribute has none); the columns a
-- view can hold (attmissingval is of a pseudo-type).
CREATE VIEW redshift_catalog.pg_attribute_info AS
SELECT a.attrelid, a.attname, a.atttypid, a.attnum, a.attisdropped, a.attacl
FROM pg_catalog.pg_attribute a;

-- Redshift calls the owner of default privileges defacluser.
CREATE VIEW redshift_catalog.pg_default_acl AS
SELECT d.defaclrole AS defacluser, d.defaclnamespace, d.defaclobjtype, d.defaclacl
FROM pg_catalog.pg_default_acl d;

-- Roles granted to users: PostgreSQL's memberships of login roles in other roles.
CREATE VIEW redshift_catalog.svv_user_grants AS
SELECT CAST(m.member AS integer) AS user_id, CAST(u.rolname AS text) AS user_name,
       CAST(m.roleid AS integer) AS role_id, CAST(r.rolname AS text) AS role_name,
       m.admin_option
FROM pg_catalog.pg_auth_members m
JOIN pg_catalog.pg_roles u ON u.oid = m.member
JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
WHERE u.rolcanlogin;

-- PostgreSQL roles have no owner: the test says who owns which.
CREATE TABLE redshift_catalog.svv_roles (
    role_id integer, role_name text, role_owner text, external_id text
);

CREATE TABLE redshift_catalog.svv_datashares (
    share_name varchar(128), share_id integer, share_owner integer,
    source_database varchar(128), consumer_database varchar(128), share_type varchar(8),
    createdate timestamp, is_publicaccessible boolean, share_acl varchar(256),
    producer_account varchar(16), producer_namespace varchar(64), managed_by varchar(64)
);

CREATE TABLE redshift_catalog.pg_library (
    name name, language_oid oid, file_store_id integer, owner integer
);

CREATE TABLE redshift_catalog.svv_ml_model_info (
    database_name char(128), schema_name char(128), user_name char(128),
    model_name char(128), life_cycle char(20), is_refreshable integer,
    model_state char(128)
);

CREATE TABLE redshift_catalog.svv_mv_info (
    database_name char(128), schema_name char(128), user_name char(128), name char(128),
    is_stale char(1), state integer, autorewrite char(1), autorefresh char(1)
);

-- What crates/sources/src/postgres.rs reads on Redshift.
CREATE TABLE redshift_catalog.svv_identity_providers (namespc varchar(128));

-- Logins (crates/sources/src/logins.rs): the connection logs a test fills, with
-- Redshift's columns and types, and the sessions open now as STV_SESSIONS shows them
-- (UTC times without a zone, blank-padded names), over PostgreSQL's own sessions.
CREATE TABLE redshift_catalog.sys_connection_log (
    event character(50), record_time timestamp, remote_host character(45),
    remote_port character(32), session_id integer, database_name character(50),
    user_name character(50), auth_method character(32), duration integer,
    application_name character(250)
);

CREATE TABLE redshift_catalog.stl_connection_log (
    event character(50), recordtime timestamp, remotehost character(45),
    remoteport character(32), pid integer, dbname character(50), username character(50),
    authmethod character(32), duration integer, application_name character(250)
);

CREATE VIEW redshift_catalog.stv_sessions AS
SELECT CAST(backend_start AT TIME ZONE 'UTC' AS timestamp) AS starttime, pid AS process,
       CAST(usename AS character(50)) AS user_name, CAST(datname AS character(50)) AS db_name,
       0 AS timeout_sec
FROM pg_catalog.pg_stat_activity
WHERE backend_type = 'client backend';

GRANT USAGE ON SCHEMA redshift_catalog TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA redshift_catalog TO PUBLIC;
