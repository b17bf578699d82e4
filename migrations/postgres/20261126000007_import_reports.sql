-- The per-row error report of an import (CSV: line,column,reason), bounded in size.
ALTER TABLE imports ADD COLUMN error_report TEXT;
