-- SecondRow metadata schema, version 5: the process group of a task's running attempt and its leader's
-- start time (clock ticks since boot, from /proc), so that an engine restarted after a crash kills what the
-- previous one left running before it runs the task again, and never a process that merely reuses the id.
ALTER TABLE tasks ADD COLUMN pgid BIGINT;
ALTER TABLE tasks ADD COLUMN pgid_started BIGINT;
