CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`target` text,
	`outcome` text NOT NULL,
	`detail` text
);
--> statement-breakpoint
CREATE INDEX `audit_at_idx` ON `audit_log` (`at`);--> statement-breakpoint
CREATE TABLE `backups` (
	`id` text PRIMARY KEY NOT NULL,
	`domain` text NOT NULL,
	`database` text NOT NULL,
	`type` text NOT NULL,
	`status` text NOT NULL,
	`manifest_key` text NOT NULL,
	`logical_bytes` integer NOT NULL,
	`stored_bytes` integer NOT NULL,
	`new_stored_bytes` integer NOT NULL,
	`chunk_count` integer NOT NULL,
	`sha256` text NOT NULL,
	`job_id` text,
	`created_at` text NOT NULL,
	`finished_at` text NOT NULL,
	`duration_ms` integer NOT NULL,
	`verified_at` text,
	`verify_depth` text,
	`verify_status` text,
	`verify_detail` text,
	`last_restore_ms` integer
);
--> statement-breakpoint
CREATE INDEX `backups_db_created_idx` ON `backups` (`database`,`created_at`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`status` text NOT NULL,
	`params` text NOT NULL,
	`backup_id` text,
	`requested_by` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`progress` text,
	`result` text,
	`error_code` text,
	`error_message` text,
	`created_at` text NOT NULL,
	`started_at` text,
	`heartbeat_at` text,
	`finished_at` text
);
--> statement-breakpoint
CREATE INDEX `jobs_status_idx` ON `jobs` (`status`,`created_at`);