using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Pipeline.PostgreSql;

namespace Orleans.Pipeline.Hosting;

/// <summary>
/// Validates <see cref="PipelineClusterOptions"/>: one failure per problem, each naming its setting; in PostgreSQL
/// mode the connection string must also parse and take the pool settings the cluster needs.
/// </summary>
public sealed class PipelineClusterOptionsValidator : IValidateOptions<PipelineClusterOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PipelineClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate().ToList();
        if (problems.Count == 0 && options.Mode == PipelineMode.PostgreSql)
        {
            try
            {
                PostgresConnections.Tune(options.ConnectionString!);
            }
            catch (ArgumentException e)
            {
                problems.Add(e.Message);
            }
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

/// <summary>Validates <see cref="PipelineSiloOptions"/>: its cluster options and its own settings, one failure per problem.</summary>
public sealed class PipelineSiloOptionsValidator : IValidateOptions<PipelineSiloOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PipelineSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var cluster = new PipelineClusterOptionsValidator().Validate(name, options.Cluster);
        var problems = cluster.Failed ? cluster.Failures.ToList() : [];
        if (options.RecentResults < 1) problems.Add("Pipeline:RecentResults must be at least 1");
        if (options.EmbeddedQueueCapacity < 1) problems.Add("Pipeline:EmbeddedQueueCapacity must be at least 1");
        if (options.KeyIdleTimeout <= TimeSpan.Zero) problems.Add("Pipeline:KeyIdleTimeout must be positive");
        if (options.ShedKeysAtMemoryPercent is { } shed && !(shed > 0 && shed <= 100))
            problems.Add($"Pipeline:ShedKeysAtMemoryPercent must be above 0 and at most 100 (0 in configuration turns shedding off), not {shed}");
        if (options.StateWriteInterval < TimeSpan.Zero) problems.Add("Pipeline:StateWriteInterval must not be negative");
        if (options.ReminderPeriod <= TimeSpan.Zero) problems.Add("Pipeline:ReminderPeriod must be positive");
        if (options.SequenceGapTimeout is { } gap && gap <= TimeSpan.Zero) problems.Add("Pipeline:SequenceGapTimeout must be positive");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pipeline in options.Pipelines.Where(p => !names.Add(p.Name))) problems.Add($"pipeline '{pipeline.Name}' is defined twice");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Throws one <see cref="ArgumentException"/> listing every problem of <paramref name="options"/>, if any.</summary>
    internal static void ThrowIfInvalid(PipelineSiloOptions options)
    {
        var result = new PipelineSiloOptionsValidator().Validate(null, options);
        if (result.Failed) throw new ArgumentException(string.Join("; ", result.Failures));
    }
}

/// <summary>The cluster options bound the .NET way, for hosts that take them from dependency injection.</summary>
public static class PipelineClusterOptionsBinding
{
    /// <summary>
    /// Binds <see cref="PipelineClusterOptions"/> to the <c>Pipeline</c> section (the connection string falling back to
    /// <c>ConnectionStrings:Pipeline</c>), validated by <see cref="PipelineClusterOptionsValidator"/> when the host
    /// starts (<c>ValidateOnStart</c>: an <see cref="OptionsValidationException"/> with one failure per problem).
    /// A silo reads them before it builds its host instead (<see cref="PipelineClientConnection.ReadClusterOptions"/>,
    /// the same validator), because they choose its providers.
    /// </summary>
    public static IServiceCollection AddPipelineClusterOptions(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PipelineClusterOptions>()
            .Bind(configuration.GetSection(PipelineClusterOptions.Section))
            .PostConfigure(o => o.ConnectionString ??= configuration.GetConnectionString("Pipeline"))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<PipelineClusterOptions>, PipelineClusterOptionsValidator>();
        return services;
    }
}
