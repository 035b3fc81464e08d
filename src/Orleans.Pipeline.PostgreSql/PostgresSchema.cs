using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>One versioned step of the schema: <c>Migrations/NNNN_name.sql</c>, embedded in this assembly.</summary>
/// <param name="Version">The step's number; steps apply in order, each once.</param>
/// <param name="Name">The file name without number and extension.</param>
/// <param name="Sql">The step's SQL, run in the migration's transaction.</param>
public sealed record Migration(int Version, string Name, string Sql)
{
    /// <summary>SHA-256 of the SQL: a step changed after it was applied is refused.</summary>
    public string Checksum { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql)));
}

/// <summary>What <see cref="PostgresSchema.MigrateAsync"/> did.</summary>
/// <param name="FromVersion">The database's version before (0 for an empty database).</param>
/// <param name="ToVersion">Its version after.</param>
/// <param name="Applied">The steps applied, in order; empty when the database was current.</param>
public sealed record MigrationReport(int FromVersion, int ToVersion, IReadOnlyList<Migration> Applied);

/// <summary>The schema is not one this build can run against; the message says what to do.</summary>
public sealed class SchemaMismatchException(string message) : PipelineStartupException(message);

/// <summary>
/// The cluster-mode schema: the Orleans ADO.NET providers' tables and queries (clustering, grain state, reminders,
/// streams; our own SQL against their contracts) and the pipeline's tables (results, late events, dead letters).
/// Versioned steps apply in one transaction under an advisory lock, so concurrent silos starting together migrate
/// once; running it again changes nothing; a database newer than this build is refused.
/// </summary>
public static class PostgresSchema
{
    /// <summary>Key of the advisory lock that serialises migrations (any constant unlikely to collide).</summary>
    private const long MigrationLock = 0x4F50_4950_454C_494E; // "OPIPELIN"

    /// <summary>Every step this build knows, in order.</summary>
    public static IReadOnlyList<Migration> Migrations { get; } = LoadMigrations();

    /// <summary>The version this build runs against.</summary>
    public static int CurrentVersion => Migrations[^1].Version;

    /// <summary>
    /// Brings the database to <paramref name="targetVersion"/> (default: <see cref="CurrentVersion"/>). Throws
    /// <see cref="SchemaMismatchException"/> when the database is newer than this build or an applied step differs
    /// from this build's copy. <paramref name="progress"/> hears of each step as it goes (waiting for another
    /// migrator's lock, the version found, each step applied, the commit).
    /// </summary>
    public static async Task<MigrationReport> MigrateAsync(string connectionString, int? targetVersion = null, CancellationToken cancellationToken = default, Action<string>? progress = null)
    {
        var target = targetVersion ?? CurrentVersion;
        if (target < 1 || target > CurrentVersion)
            throw new ArgumentOutOfRangeException(nameof(targetVersion), target, $"this build knows schema versions 1 to {CurrentVersion}");

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        progress?.Invoke("taking the migration lock (another migrator holding it is waited for) …");
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLock})", cancellationToken);
        await ExecuteAsync(connection, transaction, """
            CREATE TABLE IF NOT EXISTS pipeline_schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, cancellationToken);

        var applied = await ReadAppliedAsync(connection, transaction, cancellationToken);
        var from = applied.Count == 0 ? 0 : applied.Keys.Max();
        Check(applied);

        var steps = Migrations.Where(m => m.Version > from && m.Version <= target).ToList();
        progress?.Invoke($"schema at version {from}; {steps.Count} step(s) to apply");
        foreach (var step in steps)
        {
            var stepClock = System.Diagnostics.Stopwatch.StartNew();
            await ExecuteAsync(connection, transaction, step.Sql, cancellationToken);
            await using var record = new NpgsqlCommand(
                "INSERT INTO pipeline_schema_migrations (version, name, checksum) VALUES (@version, @name, @checksum)", connection, transaction);
            record.Parameters.AddWithValue("version", step.Version);
            record.Parameters.AddWithValue("name", step.Name);
            record.Parameters.AddWithValue("checksum", step.Checksum);
            await record.ExecuteNonQueryAsync(cancellationToken);
            progress?.Invoke($"step {step.Version} ({step.Name}) applied in {stepClock.ElapsedMilliseconds} ms");
        }

        await transaction.CommitAsync(cancellationToken);
        if (steps.Count > 0) progress?.Invoke($"committed after {clock.ElapsedMilliseconds} ms");
        return new MigrationReport(from, Math.Max(from, steps.Count == 0 ? from : steps[^1].Version), steps);
    }

    /// <summary>
    /// The database's schema version (0 when it has none). Throws <see cref="SchemaMismatchException"/> when it is
    /// not exactly <see cref="CurrentVersion"/>, with the command that fixes it.
    /// </summary>
    public static async Task<int> VerifyAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("SELECT to_regclass('pipeline_schema_migrations') IS NOT NULL", connection);
        var version = 0;
        if ((bool)(await exists.ExecuteScalarAsync(cancellationToken))!)
        {
            var applied = await ReadAppliedAsync(connection, null, cancellationToken);
            Check(applied);
            version = applied.Count == 0 ? 0 : applied.Keys.Max();
        }

        if (version < CurrentVersion)
        {
            throw new SchemaMismatchException(
                $"the database schema is at version {version}, this build needs version {CurrentVersion}: run 'orleans-pipeline-silo migrate' " +
                "(or set Pipeline:MigrateOnStart=true)");
        }

        return version;
    }

    /// <summary>The version recorded in the database (0 when none), without judging it.</summary>
    public static async Task<int> ReadVersionAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            "SELECT CASE WHEN to_regclass('pipeline_schema_migrations') IS NULL THEN 0 ELSE (SELECT coalesce(max(version), 0) FROM pipeline_schema_migrations) END", connection);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Check(Dictionary<int, string> applied)
    {
        var newest = applied.Count == 0 ? 0 : applied.Keys.Max();
        if (newest > CurrentVersion)
        {
            throw new SchemaMismatchException(
                $"the database schema is at version {newest}, newer than this build understands (up to {CurrentVersion}): " +
                "run a build of Orleans.Pipeline at least as new as the one that migrated it");
        }

        foreach (var (version, checksum) in applied)
        {
            var known = Migrations.Single(m => m.Version == version);
            if (known.Checksum != checksum)
            {
                throw new SchemaMismatchException(
                    $"schema step {version} ({known.Name}) in the database differs from this build's copy: the step was edited after it was applied; add a new step instead");
            }
        }
    }

    private static async Task<Dictionary<int, string>> ReadAppliedAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var applied = new Dictionary<int, string>();
        await using var read = new NpgsqlCommand("SELECT version, checksum FROM pipeline_schema_migrations", connection, transaction);
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken)) applied[reader.GetInt32(0)] = reader.GetString(1);
        return applied;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static List<Migration> LoadMigrations()
    {
        var assembly = typeof(PostgresSchema).Assembly;
        var steps = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("Migrations/", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var file = Path.GetFileNameWithoutExtension(resource["Migrations/".Length..]);
            var separator = file.IndexOf('_', StringComparison.Ordinal);
            var version = int.Parse(file[..separator], System.Globalization.CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            steps.Add(new Migration(version, file[(separator + 1)..], reader.ReadToEnd()));
        }

        for (var i = 0; i < steps.Count; i++)
        {
            if (steps[i].Version != i + 1) throw new InvalidOperationException($"schema steps must be numbered 1, 2, …; found {steps[i].Version} at position {i + 1}");
        }

        return steps;
    }
}
