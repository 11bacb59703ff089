/*
 * pg/sqlstate.c -- the SQLSTATE table (pg/sqlstate.h).
 *
 * Codes and names: PostgreSQL 15 documentation, Appendix A, Table A.1
 * "PostgreSQL Error Codes" (errcodes.txt in the source).  Only the codes
 * whose handling differs from their class's are listed one by one.
 */
#include <string.h>

#include "core/exit.h"
#include "pg/sqlstate.h"

#define OUTAGE DP_SQLSTATE_OUTAGE
#define RETRY DP_SQLSTATE_RETRY
#define BAD DP_SQLSTATE_BAD
#define STOP DP_SQLSTATE_STOP

static const struct dp_sqlstate rows[] = {
	/* no SQLSTATE: libpq's own error, the connection is gone */
	{ "", "connection lost", "lost the database", OUTAGE, 0 },

	/* Class 08 -- Connection Exception */
	{ "08", "connection_exception", "lost the database", OUTAGE, 0 },
	{ "08P01", "protocol_violation",
	  "the server could not read what dp-sink-pg sent (a bug in dp)", STOP, DP_EX_SOFTWARE },

	/* Class 0A -- Feature Not Supported */
	{ "0A", "feature_not_supported", "the table does not support this", STOP, DP_EX_CONFIG },

	/* Class 22 -- Data Exception; Class 23 -- Integrity Constraint Violation */
	{ "22", "data_exception", "a value the column refuses", BAD, 0 },
	{ "23", "integrity_constraint_violation", "a row a constraint refuses", BAD, 0 },

	/* Class 25 -- Invalid Transaction State */
	{ "25", "invalid_transaction_state", "a transaction in a state dp did not expect", STOP,
	  DP_EX_SOFTWARE },
	{ "25006", "read_only_sql_transaction",
	  "the database is read-only (a standby, or a primary demoted by a failover)", OUTAGE, 0 },
	{ "25P03", "idle_in_transaction_session_timeout", "lost the database", OUTAGE, 0 },

	/* Class 28 -- Invalid Authorization Specification */
	{ "28", "invalid_authorization_specification", "the login was refused", STOP, DP_EX_NOPERM },

	/* Class 3D -- Invalid Catalog Name; Class 3F -- Invalid Schema Name */
	{ "3D", "invalid_catalog_name", "the database does not exist", STOP, DP_EX_CONFIG },
	{ "3F", "invalid_schema_name", "the schema does not exist", STOP, DP_EX_CONFIG },

	/* Class 40 -- Transaction Rollback */
	{ "40", "transaction_rollback", "the server rolled the transaction back", RETRY, 0 },
	{ "40001", "serialization_failure", "a serialization failure", RETRY, 0 },
	{ "40002", "transaction_integrity_constraint_violation",
	  "a deferred constraint refused the transaction", STOP, DP_EX_TEMPFAIL },
	{ "40P01", "deadlock_detected", "a deadlock with another session", RETRY, 0 },

	/* Class 42 -- Syntax Error or Access Rule Violation */
	{ "42", "syntax_error_or_access_rule_violation", "the table and dp-sink-pg disagree", STOP,
	  DP_EX_CONFIG },
	{ "42501", "insufficient_privilege", "permission denied", STOP, DP_EX_NOPERM },
	{ "42P01", "undefined_table", "the table is not there", STOP, DP_EX_CONFIG },
	{ "42703", "undefined_column", "a column is not there", STOP, DP_EX_CONFIG },

	/* Class 44 -- WITH CHECK OPTION Violation */
	{ "44", "with_check_option_violation", "a row a view's check option refuses", BAD, 0 },

	/* Class 53 -- Insufficient Resources */
	{ "53", "insufficient_resources", "the server ran short of a resource", RETRY, 0 },
	{ "53100", "disk_full", "the database's disk is full", RETRY, 0 },
	{ "53200", "out_of_memory", "the server is out of memory", RETRY, 0 },
	{ "53300", "too_many_connections", "the server takes no more connections", OUTAGE, 0 },
	{ "53400", "configuration_limit_exceeded",
	  "a limit of the server's configuration was reached (raise it, or make the batches smaller)",
	  STOP, DP_EX_CONFIG },

	/* Class 54 -- Program Limit Exceeded */
	{ "54", "program_limit_exceeded", "a limit of PostgreSQL was reached", STOP,
	  DP_EX_TEMPFAIL },
	{ "54000", "program_limit_exceeded", "a row beyond a limit of PostgreSQL", BAD, 0 },
	{ "54011", "too_many_columns", "more columns than PostgreSQL's 1600", BAD, 0 },

	/* Class 55 -- Object Not In Prerequisite State */
	{ "55", "object_not_in_prerequisite_state", "the table is not in a state to be written",
	  STOP, DP_EX_CONFIG },
	{ "55P03", "lock_not_available", "a lock was not granted in time (lock_timeout)", RETRY, 0 },

	/* Class 57 -- Operator Intervention */
	{ "57", "operator_intervention", "an operator intervened", OUTAGE, 0 },
	{ "57014", "query_canceled", "the statement was cancelled (statement_timeout, or "
	  "pg_cancel_backend)", RETRY, 0 },
	{ "57P01", "admin_shutdown", "lost the database", OUTAGE, 0 },
	{ "57P02", "crash_shutdown", "lost the database", OUTAGE, 0 },
	{ "57P03", "cannot_connect_now", "lost the database", OUTAGE, 0 },
	{ "57P04", "database_dropped", "the database was dropped", STOP, DP_EX_CONFIG },
	{ "57P05", "idle_session_timeout", "lost the database", OUTAGE, 0 },

	/* Class 58 -- System Error (errors external to PostgreSQL itself) */
	{ "58", "system_error", "the server's system failed", STOP, DP_EX_TEMPFAIL },
	{ "58030", "io_error", "the server could not read or write its files", RETRY, 0 },

	/* Class XX -- Internal Error */
	{ "XX", "internal_error", "the server failed", STOP, DP_EX_TEMPFAIL },

	/* everything else: nothing retrying is known to mend */
	{ NULL, "unknown", "the server refused the batch", STOP, DP_EX_TEMPFAIL },
};

static const struct { const char cls[3]; const char *name; } classes[] = {
	{ "00", "Successful Completion" }, { "01", "Warning" }, { "02", "No Data" },
	{ "03", "SQL Statement Not Yet Complete" }, { "08", "Connection Exception" },
	{ "09", "Triggered Action Exception" }, { "0A", "Feature Not Supported" },
	{ "0B", "Invalid Transaction Initiation" }, { "0F", "Locator Exception" },
	{ "0L", "Invalid Grantor" }, { "0P", "Invalid Role Specification" },
	{ "0Z", "Diagnostics Exception" }, { "20", "Case Not Found" },
	{ "21", "Cardinality Violation" }, { "22", "Data Exception" },
	{ "23", "Integrity Constraint Violation" }, { "24", "Invalid Cursor State" },
	{ "25", "Invalid Transaction State" }, { "26", "Invalid SQL Statement Name" },
	{ "27", "Triggered Data Change Violation" },
	{ "28", "Invalid Authorization Specification" },
	{ "2B", "Dependent Privilege Descriptors Still Exist" },
	{ "2D", "Invalid Transaction Termination" }, { "2F", "SQL Routine Exception" },
	{ "34", "Invalid Cursor Name" }, { "38", "External Routine Exception" },
	{ "39", "External Routine Invocation Exception" }, { "3B", "Savepoint Exception" },
	{ "3D", "Invalid Catalog Name" }, { "3F", "Invalid Schema Name" },
	{ "40", "Transaction Rollback" }, { "42", "Syntax Error or Access Rule Violation" },
	{ "44", "WITH CHECK OPTION Violation" }, { "53", "Insufficient Resources" },
	{ "54", "Program Limit Exceeded" }, { "55", "Object Not In Prerequisite State" },
	{ "57", "Operator Intervention" }, { "58", "System Error" },
	{ "72", "Snapshot Failure" }, { "F0", "Configuration File Error" },
	{ "HV", "Foreign Data Wrapper Error (SQL/MED)" }, { "P0", "PL/pgSQL Error" },
	{ "XX", "Internal Error" },
};

const struct dp_sqlstate *
dp_sqlstate_of(const char *code)
{
	const struct dp_sqlstate *cls = NULL;
	size_t n = sizeof(rows) / sizeof(rows[0]);

	if (!code)
		code = "";
	for (size_t i = 0; i + 1 < n; i++) {
		const char *c = rows[i].code;
		if (strcmp(c, code) == 0)
			return &rows[i];
		if (!cls && strlen(c) == 2 && strlen(code) == 5 && strncmp(c, code, 2) == 0)
			cls = &rows[i];
	}
	return cls ? cls : &rows[n - 1];
}

const char *
dp_sqlstate_class(const char *code)
{
	for (size_t i = 0; code && i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(classes[i].cls, code, 2) == 0)
			return classes[i].name;
	return "unknown class";
}

const char *
dp_sqlstate_do_name(enum dp_sqlstate_do what)
{
	switch (what) {
	case DP_SQLSTATE_OUTAGE: return "outage";
	case DP_SQLSTATE_RETRY: return "retry";
	case DP_SQLSTATE_BAD: return "bad record";
	default: return "stop";
	}
}
