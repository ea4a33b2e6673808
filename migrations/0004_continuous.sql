CREATE TABLE `continuous_gaps` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`database` text NOT NULL,
	`after_stream_id` text NOT NULL,
	`from_time` text,
	`until_time` text,
	`cause` text NOT NULL,
	`detail` text,
	`detected_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `continuous_gaps_db_idx` ON `continuous_gaps` (`database`,`detected_at`);--> statement-breakpoint
CREATE TABLE `continuous_segments` (
	`stream_id` text NOT NULL,
	`seq` integer NOT NULL,
	`manifest_key` text NOT NULL,
	`start_lsn` text NOT NULL,
	`end_lsn` text NOT NULL,
	`first_commit_at` text,
	`last_commit_at` text,
	`transactions` integer NOT NULL,
	`logical_bytes` integer NOT NULL,
	`stored_bytes` integer NOT NULL,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `continuous_segments_pk` ON `continuous_segments` (`stream_id`,`seq`);--> statement-breakpoint
CREATE TABLE `continuous_streams` (
	`id` text PRIMARY KEY NOT NULL,
	`database` text NOT NULL,
	`status` text NOT NULL,
	`slot_name` text NOT NULL,
	`holder_job_id` text,
	`consistent_lsn` text,
	`consistent_at` text,
	`covered_until` text,
	`confirmed_lsn` text,
	`last_end_lsn` text,
	`next_seq` integer DEFAULT 0 NOT NULL,
	`schema` text,
	`uncovered` text,
	`ddl_captured` integer DEFAULT false NOT NULL,
	`slot_health` text,
	`heartbeat_at` text,
	`created_at` text NOT NULL,
	`ended_at` text,
	`end_cause` text,
	`end_detail` text
);
--> statement-breakpoint
CREATE INDEX `continuous_streams_db_idx` ON `continuous_streams` (`database`,`created_at`);