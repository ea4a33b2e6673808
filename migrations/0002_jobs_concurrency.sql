ALTER TABLE `jobs` ADD `concurrency_key` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `queued_reason` text;--> statement-breakpoint
-- backups.database held ML servers and datasets too: it names the backup's source.
ALTER TABLE `backups` RENAME COLUMN `database` TO `source`;--> statement-breakpoint
DROP INDEX `backups_db_created_idx`;--> statement-breakpoint
CREATE INDEX `backups_source_created_idx` ON `backups` (`source`,`created_at`);
