// Seeds a database that looks like AstrID's astronomy catalog, so backups and
// restores are exercised against realistic types and sizes: float8 columns,
// real[] arrays, jsonb, bytea (some stored out of line), text (some long
// enough to be compressed), an extension type in a column, an extension
// opclass in an index, GiST, partial and unique indexes, foreign keys, a
// view, sequences and NULLs.
//
// All rows are generated server-side, one INSERT ... SELECT per table, from
// hashes of the row id: no per-row round trips, and the same size always
// yields the same contents.
import { psql } from "./postgres.ts";

const DEFAULT_TARGET_BYTES = 20 * 1024 * 1024;

// What one observation, together with its share of the other tables and of
// every index, adds to pg_database_size. Measured by seeding 200 MiB, 1 GiB
// and 4 GiB databases; re-measure after changing the generators below.
const BYTES_PER_OBSERVATION = 1090;

// Small targets still get enough rows for every table to be non-trivial.
const MIN_OBSERVATIONS = 200;

/**
 * Creates and fills the catalog in an empty database. targetBytes is the
 * pg_database_size to aim for; the empty database's own size counts toward it.
 */
export async function seedAstronomyDatabase(url: string, opts: { targetBytes?: number } = {}): Promise<void> {
  const target = opts.targetBytes ?? DEFAULT_TARGET_BYTES;
  const emptySize = Number(await psql(url, "SELECT pg_database_size(current_database())"));
  const observations = Math.max(MIN_OBSERVATIONS, Math.round((target - emptySize) / BYTES_PER_OBSERVATION));
  await psql(url, seedSql(observations));
  // After the load commits: a settled database (hint bits set, tuples frozen,
  // visibility map built, statistics gathered) so a later backup sees only
  // the changes a test makes, not background maintenance catching up.
  await psql(url, "VACUUM (FREEZE, ANALYZE)");
}

/** Appends round(fraction × current row count) observations with fresh ids. */
export async function appendObservations(url: string, fraction: number): Promise<void> {
  checkFraction(fraction);
  await psql(
    url,
    `${HELPERS_SQL}
     ${insertObservationsSql(`(SELECT round(count(*) * ${fraction})::bigint FROM observations)`)}`,
  );
}

/**
 * Recalibrates a fraction of the observations: the highest ids ('newest',
 * changes clustered at the end of the table) or rows spread over the whole
 * table ('random', roughly fraction × rows; the same rows on every call).
 */
export async function updateObservations(url: string, fraction: number, where: "newest" | "random"): Promise<void> {
  checkFraction(fraction);
  const rows =
    where === "newest"
      ? `id IN (SELECT id FROM observations ORDER BY id DESC
                LIMIT (SELECT round(count(*) * ${fraction})::bigint FROM observations))`
      : `pg_temp.rnd(id, 77) < ${fraction}`;
  await psql(
    url,
    `${HELPERS_SQL}
     UPDATE observations
        SET magnitude = magnitude - 0.012,
            metadata = jsonb_set(metadata, '{recalibrations}',
                                 to_jsonb(coalesce((metadata->>'recalibrations')::int, 0) + 1))
      WHERE ${rows};`,
  );
}

function checkFraction(fraction: number): void {
  if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`fraction must be within [0, 1], got ${fraction}`);
}

function seedSql(observations: number): string {
  const sources = Math.max(10, Math.floor(observations / 8));
  const images = Math.ceil(observations / 4);
  // One transaction: a failed seed leaves an empty database, not half a catalog.
  // Indexes and foreign keys come after the load, which is several times
  // faster than maintaining them row by row.
  return `
    BEGIN;
    SET LOCAL maintenance_work_mem = '256MB';
    SET LOCAL work_mem = '64MB';
    ${SCHEMA_SQL}
    ${HELPERS_SQL}
    ${SURVEYS_SQL}
    ${insertObservationsSql(String(observations))}
    ${insertSourcesSql(sources)}
    ${insertDetectionsSql(observations, sources)}
    ${insertImageFilesSql(images)}
    ${CONSTRAINTS_SQL}
    COMMIT;`;
}

const SCHEMA_SQL = `
  CREATE EXTENSION IF NOT EXISTS citext;
  CREATE EXTENSION IF NOT EXISTS pg_trgm;

  CREATE TABLE surveys (
    id smallint PRIMARY KEY,
    code citext NOT NULL UNIQUE,
    name text NOT NULL,
    telescope text NOT NULL,
    aperture_m real NOT NULL,
    bands text[] NOT NULL,
    started_on date NOT NULL,
    ended_on date,
    description text
  );
  COMMENT ON COLUMN surveys.ended_on IS 'NULL while the survey is still observing';

  CREATE SEQUENCE observation_id_seq;
  CREATE TABLE observations (
    id bigint NOT NULL DEFAULT nextval('observation_id_seq'),
    survey_id smallint NOT NULL,
    observed_at timestamptz NOT NULL,
    ra double precision NOT NULL,
    dec double precision NOT NULL,
    band text NOT NULL,
    magnitude double precision,
    magnitude_err real,
    exposure_s real NOT NULL,
    airmass real,
    flux real[] NOT NULL,
    metadata jsonb NOT NULL,
    notes text
  );
  ALTER SEQUENCE observation_id_seq OWNED BY observations.id;
  COMMENT ON TABLE observations IS 'One exposure of one field; flux holds the light-curve samples';
  COMMENT ON COLUMN observations.magnitude IS 'NULL when nothing was detected above the limit';

  CREATE TABLE sources (
    id integer NOT NULL,
    designation text NOT NULL,
    position point NOT NULL,
    object_class text,
    mean_magnitude real,
    redshift double precision,
    first_seen timestamptz NOT NULL
  );

  CREATE TABLE detections (
    id bigint GENERATED ALWAYS AS IDENTITY,
    observation_id bigint NOT NULL,
    source_id integer,
    snr real NOT NULL,
    cutout bytea
  );

  CREATE TABLE image_files (
    id integer NOT NULL,
    observation_id bigint,
    path text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text,
    created_at timestamptz NOT NULL
  );`;

// Session-local generators (pg_temp, so they never become part of the
// catalog being backed up). Plain SQL functions so the planner inlines them.
const HELPERS_SQL = `
  -- Uniform in [0, 1), determined by (row, salt): 53 bits of a 64-bit hash.
  CREATE FUNCTION pg_temp.rnd(i bigint, salt integer) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ((hashint8extended(i, salt) >> 11) & 9007199254740991)::float8 / 9007199254740992 $$;
  -- Survey and time of observation i, shared by observations and image_files
  -- so the two agree without joining. Skewed towards the first surveys.
  CREATE FUNCTION pg_temp.obs_survey(i bigint) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (1 + floor(pg_temp.rnd(i, 0) ^ 2 * 8))::smallint $$;
  CREATE FUNCTION pg_temp.obs_time(i bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT timestamptz '2018-01-01 00:00:00+00' + (i * 53 + floor(pg_temp.rnd(i, 1) * 40)) * interval '1 second' $$;`;

const SURVEYS_SQL = `
  INSERT INTO surveys VALUES
    (1, 'LSST', 'Legacy Survey of Space and Time', 'Simonyi Survey Telescope', 8.4, '{u,g,r,i,z,y}', '2025-06-23', NULL, 'Wide-fast-deep survey of the southern sky'),
    (2, 'ZTF', 'Zwicky Transient Facility', 'Samuel Oschin Telescope', 1.2, '{g,r,i}', '2018-03-20', NULL, 'Northern sky every two nights'),
    (3, 'PS1', 'Pan-STARRS1 3pi', 'PS1', 1.8, '{g,r,i,z,y}', '2010-05-13', '2014-03-31', NULL),
    (4, 'SDSS', 'Sloan Digital Sky Survey', 'Sloan Foundation 2.5m', 2.5, '{u,g,r,i,z}', '2000-04-01', '2009-06-30', 'Legacy imaging'),
    (5, 'DES', 'Dark Energy Survey', 'Blanco 4m', 4.0, '{g,r,i,z,y}', '2013-08-31', '2019-01-09', NULL),
    (6, 'ATLAS', 'Asteroid Terrestrial-impact Last Alert System', 'ATLAS units', 0.5, '{c,o}', '2015-06-01', NULL, 'Near-Earth object alerts'),
    (7, 'ASAS-SN', 'All-Sky Automated Survey for Supernovae', 'ASAS-SN network', 0.14, '{V,g}', '2013-01-01', NULL, NULL),
    (8, 'ASTRID', 'AstrID follow-up', 'Rented time', 1.0, '{g,r}', '2024-01-15', NULL, 'Targeted follow-up of anomaly candidates');`;

// The observation generator, also used to append: ids come from the sequence
// and every value is derived from the id. countSql is a SQL expression.
function insertObservationsSql(countSql: string): string {
  return `
  INSERT INTO observations (id, survey_id, observed_at, ra, dec, band, magnitude, magnitude_err,
                            exposure_s, airmass, flux, metadata, notes)
  SELECT i,
         pg_temp.obs_survey(i),
         pg_temp.obs_time(i),
         360 * pg_temp.rnd(i, 2),
         degrees(asin(2 * pg_temp.rnd(i, 3) - 1)),  -- uniform over the sphere
         substr('ugrizy', 1 + (i % 6)::int, 1),
         m.magnitude,
         CASE WHEN m.magnitude IS NOT NULL THEN (0.004 + 0.2 * pg_temp.rnd(i, 6) ^ 3)::real END,
         (ARRAY[15, 30, 30, 60, 120, 300])[1 + (i / 6 % 6)::int],
         CASE WHEN pg_temp.rnd(i, 7) >= 0.02 THEN (1 / cos(radians(70 * pg_temp.rnd(i, 8))))::real END,
         ARRAY(SELECT (m.flux * (1 + 0.05 * sin(k::float8 * 0.7 + i)) + 4 * (pg_temp.rnd(i * 64 + k, 9) - 0.5))::real
                 FROM generate_series(1, 16 + (i % 33)::int) k),
         jsonb_build_object(
           'seeing_arcsec', round((0.5 + 1.8 * pg_temp.rnd(i, 10))::numeric, 2),
           'moon_illumination', round(pg_temp.rnd(i, 11)::numeric, 3),
           'ccd', i % 189,
           'pipeline', jsonb_build_object('version', 'v4.' || (i / 250000), 'flags',
             to_jsonb(array_remove(ARRAY[CASE WHEN pg_temp.rnd(i, 12) < 0.05 THEN 'SATURATED' END,
                                         CASE WHEN pg_temp.rnd(i, 13) < 0.08 THEN 'EDGE' END,
                                         CASE WHEN pg_temp.rnd(i, 14) < 0.02 THEN 'CR_HIT' END], NULL))))
           || CASE WHEN pg_temp.rnd(i, 15) < 0.3
                   THEN jsonb_build_object('weather', jsonb_build_object(
                          'humidity_pct', round(100 * pg_temp.rnd(i, 16)), 'wind_kmh', round((60 * pg_temp.rnd(i, 17))::numeric, 1)))
                   ELSE '{}' END,
         CASE WHEN pg_temp.rnd(i, 18) < 0.5 THEN NULL ELSE
           (SELECT string_agg(${PHRASES}[1 + ((hashint8extended(i * 64 + k, 19) & 1023) % ${PHRASE_COUNT})::int], ' ')
              -- about 1% are long logs, over the 2 kB that makes PostgreSQL compress them
              FROM generate_series(1, CASE WHEN pg_temp.rnd(i, 20) < 0.01 THEN 90 ELSE 2 + (i % 9)::int END) k)
         END
    FROM (SELECT nextval('observation_id_seq') AS i FROM generate_series(1, ${countSql})) AS ids
         CROSS JOIN LATERAL (
           SELECT CASE WHEN pg_temp.rnd(i, 4) >= 0.04 THEN 15 + 9 * sqrt(pg_temp.rnd(i, 5)) END AS magnitude,
                  105 - 100 * pg_temp.rnd(i, 5) AS flux) AS m;  -- fainter, less flux`;
}

// Observer-log fragments; notes are random runs of them, which compress about
// as well as real free text does (better than random bytes, worse than repeats).
const PHRASE_LIST = [
  "seeing degraded after midnight",
  "thin cirrus drifting in from the west",
  "guiding lost briefly, reacquired",
  "satellite trail across the northern chips",
  "cosmic ray hits on the red amplifiers",
  "bright star ghost near the field edge",
  "moon within thirty degrees of the target",
  "dome flat taken at twilight",
  "focus adjusted after temperature drop",
  "wind shake visible in the PSF",
  "humidity close to the closing limit",
  "amplifier glow in the lower corners",
  "readout noise slightly elevated",
  "target acquired on second attempt",
  "filter wheel stuck for two minutes",
  "reprocessed with the new bias frames",
  "transient candidate flagged for follow-up",
  "photometric zero point drifted",
  "astrometric solution refit with Gaia DR3",
  "tracking error on the declination axis",
  "light leak suspected during the exposure",
  "sky background high from city lights",
  "comparison stars saturated",
  "observer noted variable extinction",
  "exposure aborted and restarted",
  "calibration lamps warmed up late",
  "crosstalk between neighbouring chips",
  "variable star in the comparison set",
  "clouds cleared, conditions photometric",
  "asteroid moving through the field",
  "dither pattern shortened for weather",
  "telescope parked during high winds",
];
const PHRASE_COUNT = PHRASE_LIST.length;
const PHRASES = `(ARRAY[${PHRASE_LIST.map((p) => `'${p.replaceAll("'", "''")}'`).join(", ")}])`;

function insertSourcesSql(count: number): string {
  return `
  INSERT INTO sources (id, designation, position, object_class, mean_magnitude, redshift, first_seen)
  SELECT j,
         format('ASTRID J%s%s', to_char(p.ra, 'FM000.00000'), to_char(p.dec, 'SG00.00000')),
         point(p.ra, p.dec),
         (ARRAY['star', 'star', 'star', 'galaxy', 'galaxy', 'qso', 'sn', NULL])[1 + (hashint8extended(j, 31) & 7)::int],
         (14 + 10 * pg_temp.rnd(j, 32))::real,
         CASE WHEN pg_temp.rnd(j, 33) < 0.4 THEN round((3 * pg_temp.rnd(j, 34) ^ 2)::numeric, 5)::float8 END,
         timestamptz '2018-01-01 00:00:00+00' + pg_temp.rnd(j, 35) * interval '2557 days'
    FROM generate_series(1, ${count}) j
         CROSS JOIN LATERAL (SELECT 360 * pg_temp.rnd(j, 36) AS ra,
                                    degrees(asin(2 * pg_temp.rnd(j, 37) - 1)) AS dec) AS p;`;
}

// One detection per observation on average, spread at random (some
// observations have none). Cutouts are noise: 128 bytes each, 4 KiB (stored
// out of line, uncompressed) for the brightest 2%, none below SNR 5.
function insertDetectionsSql(observations: number, sources: number): string {
  return `
  INSERT INTO detections (observation_id, source_id, snr, cutout)
  SELECT 1 + (hashint8extended(j, 40) & 2147483647) % ${observations},
         CASE WHEN pg_temp.rnd(j, 41) >= 0.12 THEN 1 + (hashint8extended(j, 42) & 2147483647) % ${sources} END,
         s.snr,
         CASE WHEN s.snr < 5 THEN NULL
              WHEN s.snr > 98 THEN (SELECT string_agg(sha512(int8send(j * 64 + k)), ''::bytea) FROM generate_series(1, 64) k)
              ELSE sha512(int8send(j)) || sha512(int8send(-j))
         END
    FROM generate_series(1, ${observations}) j
         CROSS JOIN LATERAL (SELECT (3 + 97 * pg_temp.rnd(j, 43))::real AS snr) AS s;`;
}

// One raw frame for every fourth observation; 5% are calibration frames
// with no observation.
function insertImageFilesSql(count: number): string {
  return `
  INSERT INTO image_files (id, observation_id, path, size_bytes, sha256, created_at)
  SELECT f,
         CASE WHEN pg_temp.rnd(f, 51) >= 0.05 THEN o END,
         format('r2://astrid-raw/%s/%s/%s_%s_ccd%s.fits',
                (SELECT lower(code::text) FROM surveys WHERE id = pg_temp.obs_survey(o)),
                to_char(pg_temp.obs_time(o) AT TIME ZONE 'UTC', 'YYYY/MM/DD'),
                CASE WHEN pg_temp.rnd(f, 51) >= 0.05 THEN 'exp' ELSE 'flat' END,
                lpad(o::text, 9, '0'), lpad((o % 189)::text, 3, '0')),
         16777216 + (hashint8extended(f, 52) & 67108863),
         CASE WHEN pg_temp.rnd(f, 53) >= 0.03 THEN encode(sha256(int8send(f)), 'hex') END,
         pg_temp.obs_time(o) + interval '90 seconds'
    FROM generate_series(1, ${count}) f
         CROSS JOIN LATERAL (SELECT f * 4::bigint - 3 AS o) AS obs;`;
}

const CONSTRAINTS_SQL = `
  ALTER TABLE observations ADD PRIMARY KEY (id);
  ALTER TABLE sources ADD PRIMARY KEY (id);
  ALTER TABLE detections ADD PRIMARY KEY (id);
  ALTER TABLE image_files ADD PRIMARY KEY (id);
  ALTER TABLE image_files ADD UNIQUE (path);

  CREATE INDEX observations_survey_time_idx ON observations (survey_id, observed_at);
  CREATE INDEX sources_position_idx ON sources USING gist (position);
  CREATE INDEX sources_designation_idx ON sources (designation);
  CREATE INDEX detections_observation_idx ON detections (observation_id);
  CREATE INDEX detections_source_idx ON detections (source_id) WHERE source_id IS NOT NULL;
  CREATE INDEX image_files_path_trgm_idx ON image_files USING gin (path gin_trgm_ops);

  ALTER TABLE observations ADD FOREIGN KEY (survey_id) REFERENCES surveys;
  ALTER TABLE detections ADD FOREIGN KEY (observation_id) REFERENCES observations ON DELETE CASCADE;
  ALTER TABLE detections ADD FOREIGN KEY (source_id) REFERENCES sources;
  ALTER TABLE image_files ADD FOREIGN KEY (observation_id) REFERENCES observations ON DELETE SET NULL;

  CREATE VIEW nightly_survey_stats AS
    SELECT s.code AS survey,
           date_trunc('day', o.observed_at AT TIME ZONE 'UTC') AS night,
           count(*) AS observations,
           avg(o.magnitude) AS mean_magnitude
      FROM observations o JOIN surveys s ON s.id = o.survey_id
     GROUP BY 1, 2;`;
