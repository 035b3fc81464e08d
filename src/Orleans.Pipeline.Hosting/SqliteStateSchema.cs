using Microsoft.Data.Sqlite;

namespace Orleans.Pipeline.Hosting;

/// <summary>
/// The embedded mode's grain state database: one SQLite file holding the queries the ADO.NET grain storage reads
/// from <c>OrleansQuery</c> and the state table they use. Created (idempotently) before the silo starts.
/// </summary>
/// <remarks>
/// Contract of the ADO.NET grain storage: every query receives <c>@ServiceId</c>, <c>@GrainTypeString</c> (the state
/// name), <c>@GrainIdN0</c>, <c>@GrainIdN1</c>, <c>@GrainIdExtensionString</c> (the whole key of a string-keyed grain)
/// and the two hashes; a read returns <c>PayloadBinary</c> and <c>Version</c>; a write returns exactly one
/// <c>NewGrainStateVersion</c> that differs from the version it was given, and no row on a version conflict.
/// </remarks>
public static class SqliteStateSchema
{
    private const string KeyMatch =
        "service_id = @ServiceId AND state_name = @GrainTypeString AND n0 = @GrainIdN0 AND n1 = @GrainIdN1 " +
        "AND key_ext = COALESCE(@GrainIdExtensionString, '')";

    private const string Tables = """
        CREATE TABLE IF NOT EXISTS OrleansQuery (
            QueryKey  TEXT NOT NULL PRIMARY KEY,
            QueryText TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS grain_state (
            service_id  TEXT    NOT NULL,
            state_name  TEXT    NOT NULL,
            n0          INTEGER NOT NULL,
            n1          INTEGER NOT NULL,
            key_ext     TEXT    NOT NULL,
            payload     BLOB,
            version     INTEGER NOT NULL,
            modified_at TEXT    NOT NULL,
            PRIMARY KEY (service_id, state_name, n0, n1, key_ext)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS pipeline_key_state (
            pipeline TEXT    NOT NULL,
            key      TEXT    NOT NULL,
            version  INTEGER NOT NULL,
            payload  BLOB    NOT NULL,
            PRIMARY KEY (pipeline, key)) WITHOUT ROWID;
        """;

    /// <summary>The queries by key, as the grain storage looks them up.</summary>
    public static IReadOnlyDictionary<string, string> Queries { get; } = new Dictionary<string, string>
    {
        ["ReadFromStorageKey"] = $"SELECT payload AS PayloadBinary, version AS Version FROM grain_state WHERE {KeyMatch};",
        ["WriteToStorageKey"] =
            $"UPDATE grain_state SET payload = @PayloadBinary, version = version + 1, modified_at = datetime('now') " +
            $"WHERE {KeyMatch} AND @GrainStateVersion IS NOT NULL AND version = @GrainStateVersion " +
            "RETURNING version AS NewGrainStateVersion; " +
            "INSERT INTO grain_state (service_id, state_name, n0, n1, key_ext, payload, version, modified_at) " +
            "SELECT @ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, COALESCE(@GrainIdExtensionString, ''), @PayloadBinary, 1, datetime('now') " +
            "WHERE @GrainStateVersion IS NULL ON CONFLICT DO NOTHING RETURNING version AS NewGrainStateVersion;",
        ["ClearStorageKey"] =
            $"UPDATE grain_state SET payload = NULL, version = version + 1, modified_at = datetime('now') " +
            $"WHERE {KeyMatch} AND version = @GrainStateVersion RETURNING version AS NewGrainStateVersion;",
        ["DeleteStorageKey"] =
            $"DELETE FROM grain_state WHERE {KeyMatch} AND version = @GrainStateVersion RETURNING version + 1 AS NewGrainStateVersion;",
    };

    /// <summary>
    /// Creates the database file (and its directory) when missing, the tables, and the queries; switches the file to
    /// WAL journaling, which concurrent grain writes need. Safe to run on every start.
    /// </summary>
    /// <returns>The connection string the grain storage should use.</returns>
    public static string Ensure(string databasePath)
    {
        var fullPath = Path.GetFullPath(databasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Default,
            DefaultTimeout = 30,
        }.ToString();

        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";
            pragma.ExecuteNonQuery();
        }

        using var transaction = connection.BeginTransaction();
        using (var create = connection.CreateCommand())
        {
            create.Transaction = transaction;
            create.CommandText = Tables;
            create.ExecuteNonQuery();
        }

        foreach (var (key, text) in Queries)
        {
            using var upsert = connection.CreateCommand();
            upsert.Transaction = transaction;
            upsert.CommandText = "INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES ($key, $text) ON CONFLICT (QueryKey) DO UPDATE SET QueryText = excluded.QueryText;";
            upsert.Parameters.AddWithValue("$key", key);
            upsert.Parameters.AddWithValue("$text", text);
            upsert.ExecuteNonQuery();
        }

        transaction.Commit();
        return connectionString;
    }
}
