CREATE TABLE `bucket_protection` (
	`bucket` text PRIMARY KEY NOT NULL,
	`versioning_since` text,
	`replica_bucket` text,
	`replication_since` text,
	`last_reconciled_at` text,
	`last_drift` integer
);
--> statement-breakpoint
CREATE TABLE `object_versions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`bucket` text NOT NULL,
	`key` text NOT NULL,
	`event_time` text NOT NULL,
	`action` text NOT NULL,
	`etag` text NOT NULL,
	`size` integer,
	`sha256` text,
	`meta` text,
	`source` text NOT NULL,
	`captured_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `object_versions_identity` ON `object_versions` (`bucket`,`key`,`event_time`,`action`,`etag`);--> statement-breakpoint
CREATE INDEX `object_versions_key_time` ON `object_versions` (`bucket`,`key`,`event_time`);--> statement-breakpoint
CREATE TABLE `replication_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`bucket` text NOT NULL,
	`key` text NOT NULL,
	`action` text NOT NULL,
	`event_time` text NOT NULL,
	`applied_at` text NOT NULL,
	`lag_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `replication_log_bucket_applied` ON `replication_log` (`bucket`,`applied_at`);--> statement-breakpoint
CREATE TABLE `storage_snapshots` (
	`id` text PRIMARY KEY NOT NULL,
	`bucket` text NOT NULL,
	`prefix` text NOT NULL,
	`parent_id` text,
	`status` text NOT NULL,
	`manifest_key` text NOT NULL,
	`objects` integer NOT NULL,
	`bytes` integer NOT NULL,
	`copied_objects` integer NOT NULL,
	`copied_bytes` integer NOT NULL,
	`job_id` text,
	`created_at` text NOT NULL,
	`finished_at` text NOT NULL,
	`duration_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `storage_snapshots_bucket_idx` ON `storage_snapshots` (`bucket`,`prefix`,`created_at`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `step` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `state` text;