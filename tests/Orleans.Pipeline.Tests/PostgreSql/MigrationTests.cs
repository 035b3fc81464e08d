using Npgsql;
using Orleans.Pipeline.PostgreSql;

namespace Orleans.Pipeline.Tests.PostgreSql;

[Collection(PostgresCollection.Name)]
public sealed class MigrationTests(PostgresServer postgres)
{
    /// <summary>Query keys the Orleans ADO.NET providers look up in orleansquery.</summary>
    public static readonly string[] ProviderQueryKeys =
    [
        "ReadFromStorageKey", "WriteToStorageKey", "ClearStorageKey", "DeleteStorageKey",
        "GatewaysQueryKey", "MembershipReadRowKey", "MembershipReadAllKey", "InsertMembershipVersionKey", "UpdateIAmAlivetimeKey",
        "InsertMembershipKey", "UpdateMembershipKey", "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey",
        "ReadReminderRowsKey", "ReadRangeRows1Key", "ReadRangeRows2Key", "ReadReminderRowKey", "UpsertReminderRowKey",
        "DeleteReminderRowKey", "DeleteReminderRowsKey",
        "QueueStreamMessageKey", "GetStreamMessagesKey", "ConfirmStreamMessagesKey", "FailStreamMessageKey",
        "EvictStreamMessagesKey", "EvictStreamDeadLettersKey",
    ];

    [Fact]
    public async Task Migrating_an_empty_database_applies_every_step_and_registers_every_provider_query()
    {
        var database = await postgres.NewDatabaseAsync();

        var report = await PostgresSchema.MigrateAsync(database);

        Assert.Equal(0, report.FromVersion);
        Assert.Equal(PostgresSchema.CurrentVersion, report.ToVersion);
        Assert.Equal(PostgresSchema.Migrations.Select(m => m.Version), report.Applied.Select(m => m.Version));
        var queries = await ScalarListAsync(database, "SELECT querykey FROM orleansquery");
        Assert.Empty(ProviderQueryKeys.Except(queries));
        Assert.Equal(PostgresSchema.CurrentVersion, await PostgresSchema.VerifyAsync(database));
    }

    [Fact]
    public async Task Migrating_twice_changes_nothing()
    {
        var database = await postgres.NewDatabaseAsync();
        await PostgresSchema.MigrateAsync(database);
        var before = await DescribeAsync(database);

        var again = await PostgresSchema.MigrateAsync(database);

        Assert.Empty(again.Applied);
        Assert.Equal(PostgresSchema.CurrentVersion, again.FromVersion);
        Assert.Equal(before, await DescribeAsync(database));
    }

    [Fact]
    public async Task Migrating_over_the_previous_version_gives_the_same_schema_as_a_fresh_database()
    {
        var upgraded = await postgres.NewDatabaseAsync();
        var previous = await PostgresSchema.MigrateAsync(upgraded, PostgresSchema.CurrentVersion - 1);
        Assert.Equal(PostgresSchema.CurrentVersion - 1, previous.ToVersion);
        Assert.Equal(PostgresSchema.CurrentVersion - 1, await PostgresSchema.ReadVersionAsync(upgraded));
        await Assert.ThrowsAsync<SchemaMismatchException>(() => PostgresSchema.VerifyAsync(upgraded));

        var report = await PostgresSchema.MigrateAsync(upgraded);
        var fresh = await postgres.NewMigratedDatabaseAsync();

        Assert.Equal([PostgresSchema.CurrentVersion], report.Applied.Select(m => m.Version));
        Assert.Equal(await DescribeAsync(fresh), await DescribeAsync(upgraded));
    }

    [Fact]
    public async Task Concurrent_migrations_apply_each_step_once()
    {
        var database = await postgres.NewDatabaseAsync();

        var reports = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostgresSchema.MigrateAsync(database)));

        Assert.Equal(PostgresSchema.Migrations.Count, reports.Sum(r => r.Applied.Count));
        Assert.Equal(PostgresSchema.Migrations.Count, (await ScalarListAsync(database, "SELECT version::text FROM pipeline_schema_migrations")).Count);
    }

    [Fact]
    public async Task A_database_newer_than_the_build_is_refused_with_a_clear_message()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await ExecuteAsync(database, $"INSERT INTO pipeline_schema_migrations (version, name, checksum) VALUES ({PostgresSchema.CurrentVersion + 1}, 'future', 'x')");

        var migrate = await Assert.ThrowsAsync<SchemaMismatchException>(() => PostgresSchema.MigrateAsync(database));
        var verify = await Assert.ThrowsAsync<SchemaMismatchException>(() => PostgresSchema.VerifyAsync(database));

        Assert.Contains($"version {PostgresSchema.CurrentVersion + 1}, newer than this build", migrate.Message);
        Assert.Equal(migrate.Message, verify.Message);
    }

    [Fact]
    public async Task A_step_edited_after_it_was_applied_is_refused()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await ExecuteAsync(database, "UPDATE pipeline_schema_migrations SET checksum = 'edited' WHERE version = 1");

        var error = await Assert.ThrowsAsync<SchemaMismatchException>(() => PostgresSchema.MigrateAsync(database));

        Assert.Contains("step 1", error.Message);
    }

    [Fact]
    public async Task A_database_without_the_schema_is_refused_with_the_command_that_fixes_it()
    {
        var database = await postgres.NewDatabaseAsync();

        var error = await Assert.ThrowsAsync<SchemaMismatchException>(() => PostgresSchema.VerifyAsync(database));

        Assert.Contains("version 0", error.Message);
        Assert.Contains("migrate", error.Message);
    }

    /// <summary>Tables, columns, indexes, views and registered queries: what a schema comparison needs.</summary>
    private static async Task<string> DescribeAsync(string connectionString)
    {
        var columns = await ScalarListAsync(connectionString, """
            SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = 'public'
            """);
        var indexes = await ScalarListAsync(connectionString, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'");
        var views = await ScalarListAsync(connectionString, "SELECT viewname || ':' || definition FROM pg_views WHERE schemaname = 'public'");
        var queries = await ScalarListAsync(connectionString, "SELECT querykey || '=' || md5(querytext) FROM orleansquery");
        var versions = await ScalarListAsync(connectionString, "SELECT version || ':' || name || ':' || checksum FROM pipeline_schema_migrations");
        return string.Join('\n', columns.Concat(indexes).Concat(views).Concat(queries).Concat(versions).Order(StringComparer.Ordinal));
    }

    private static async Task<List<string>> ScalarListAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<string>();
        while (await reader.ReadAsync()) values.Add(reader.GetString(0));
        return values;
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
