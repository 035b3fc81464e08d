using System.Text.Json;
using Npgsql;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The JSON objects of the results table (output_values) and of late events (field_values): names that need escaping
/// are stored as given, and every finite double reads back bit for bit (but for the sign of −0, which jsonb does not
/// keep); a value that is not a finite number reads back NaN.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ResultValuesTests(PostgresServer postgres)
{
    private static readonly string[] AwkwardNames =
    [
        "say \"hi\"", @"back\slash\", "ünïcødé ✓ 名前 𝄞", "tab\tnew\nline", "</script>&'+", "{\"json\": [1]}", "v1",
    ];

    [Fact]
    public async Task Awkward_names_and_extreme_doubles_round_trip_through_the_results_table_exactly()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(database);
        // Output names and field names that need escaping, one aggregation per name (max of a field of the same name).
        var pipeline = new PipelineDefinition("awkward", new WindowingDefinition(WindowSpec.Tumbling(10),
            [AggregationSpec.Count(name: "count \"all\""), .. AwkwardNames.Select(n => AggregationSpec.Max(n, name: n))]));
        var catalog = new PipelineCatalog([pipeline]);
        var sink = new PostgresResultSink(dataSource, catalog);
        var outputs = pipeline.OutputNames();
        Assert.Equal(["count \"all\"", .. AwkwardNames], outputs);

        double[] values = [double.MaxValue, double.Epsilon, -0.0, double.MinValue, -double.Epsilon, 0.1, 1.0 / 3, 9_007_199_254_740_992.0, -1e-300, 0.0];
        double[] notNumbers = [double.NaN, double.PositiveInfinity, double.NegativeInfinity];
        var rows = values.Concat(notNumbers).Chunk(outputs.Count - 1)
            .Select((chunk, i) => new WindowResult(i * 10, i * 10 + 10, 1, ResultKind.Final, 3, [i, .. chunk, .. Enumerable.Repeat(-0.0, outputs.Count - 1 - chunk.Length)], i * 10 + 10))
            .ToArray();
        var late = new LateEvent(5, [.. values.Take(AwkwardNames.Length - 1), double.NaN], 20);
        await sink.WriteAsync(new SinkWrite(pipeline.Name, "k", rows, [new LateEventRecord(Guid.NewGuid(), 1, 0, late)], []));

        var read = await new PostgresResultReader(dataSource).ReadChangesAsync(pipeline.Name, outputs, 0, [], 100, CancellationToken.None);
        Assert.Equal(rows.Length, read.Count);
        foreach (var (written, stored) in rows.Zip(read.OrderBy(r => r.Result.Start).Select(r => r.Result)))
        {
            Assert.Equal((written.Start, written.End, written.EventCount), (stored.Start, stored.End, stored.EventCount));
            Assert.Equal(written.Values.Select(Expected), stored.Values.Select(Bits));
        }

        // Every key is stored unescaped, as given.
        Assert.Equal(outputs.Order(StringComparer.Ordinal), await KeysAsync(database, "SELECT DISTINCT jsonb_object_keys(output_values) FROM pipeline_window_results"));
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT field_values::text FROM pipeline_late_events", connection);
        using var fields = JsonDocument.Parse((string)(await command.ExecuteScalarAsync())!);
        Assert.Equal(AwkwardNames.Order(StringComparer.Ordinal), fields.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(late.Values.Select(Expected), AwkwardNames.Select(n => fields.RootElement.GetProperty(n) is { ValueKind: JsonValueKind.Number } v ? v.GetDouble() : double.NaN).Select(Bits));
    }

    /// <summary>
    /// What a value reads back as: itself, bit for bit, when finite; NaN (null in JSON) when not. The one exception is
    /// −0, written as <c>-0</c> but stored by jsonb as the numeric 0, which has no sign: it reads back as 0 (equal, as a
    /// double, to −0).
    /// </summary>
    private static long Expected(double value) => Bits(!double.IsFinite(value) ? double.NaN : value == 0 ? 0.0 : value);

    private static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

    private static async Task<string[]> KeysAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var keys = new List<string>();
        while (await reader.ReadAsync()) keys.Add(reader.GetString(0));
        return [.. keys.Order(StringComparer.Ordinal)];
    }
}
