using System.Text.Json;
using Npgsql;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>Reading what cluster mode wrote, as an analyst would.</summary>
internal static class PostgresQueries
{
    /// <summary>The results table's current rows of one key, as window results (values in output order).</summary>
    public static async Task<Dictionary<(long, long), WindowResult>> ReadResultsAsync(string connectionString, PipelineDefinition pipeline, string key)
    {
        var names = pipeline.OutputNames();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            SELECT window_start, window_end, revision, kind, event_count, watermark, output_values::text
            FROM pipeline_window_results WHERE pipeline = @pipeline AND key = @key AND kind <> 'retraction'
            """, connection);
        command.Parameters.AddWithValue("pipeline", pipeline.Name);
        command.Parameters.AddWithValue("key", key);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<(long, long), WindowResult>();
        while (await reader.ReadAsync())
        {
            using var json = JsonDocument.Parse(reader.GetString(6));
            var values = names.Select(n => json.RootElement.GetProperty(n) is { ValueKind: JsonValueKind.Number } v ? v.GetDouble() : double.NaN).ToArray();
            // Top-N values carry their key beside them, as "<name>_key".
            var labels = names.Select(n => json.RootElement.TryGetProperty(n + "_key", out var l) ? l.GetString() : null).ToArray();
            var kind = Enum.Parse<ResultKind>(reader.GetString(3), ignoreCase: true);
            rows[(reader.GetInt64(0), reader.GetInt64(1))] = new WindowResult(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt32(2), kind, reader.GetInt64(4), values, reader.GetInt64(5),
                labels.Any(l => l is not null) ? labels : null);
        }

        return rows;
    }

    public static async Task<long> ScalarAsync(string connectionString, string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
