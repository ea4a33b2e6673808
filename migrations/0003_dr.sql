CREATE TABLE `dr_alerts` (
	`key` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`source` text NOT NULL,
	`status` text NOT NULL,
	`summary` text NOT NULL,
	`fired_at` text NOT NULL,
	`resolved_at` text,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `dr_runs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`trigger` text NOT NULL,
	`status` text NOT NULL,
	`requested_by` text NOT NULL,
	`started_at` text NOT NULL,
	`finished_at` text,
	`duration_ms` integer,
	`results` text,
	`data_loss_seconds` integer,
	`errors` text
);
--> statement-breakpoint
CREATE INDEX `dr_runs_started_idx` ON `dr_runs` (`started_at`);