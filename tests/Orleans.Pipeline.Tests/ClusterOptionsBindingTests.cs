using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Pipeline.Hosting;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// The cluster and silo options validated the .NET way: <c>AddPipelineClusterOptions(configuration)</c> binds the
/// section and stops the host at start with one line per problem; the silo's own reading and <c>AddPipelineSilo</c>
/// go through the same validators and say the same.
/// </summary>
public sealed class ClusterOptionsBindingTests
{
    private static IHost Host(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddPipelineClusterOptions(builder.Configuration);
        return builder.Build();
    }

    [Fact]
    public void The_sections_values_and_the_connection_string_fallback_reach_the_options()
    {
        using var host = Host(new()
        {
            ["Pipeline:Mode"] = "PostgreSql",
            ["Pipeline:ClusterId"] = "blue",
            ["ConnectionStrings:Pipeline"] = "Host=db;Database=pipeline",
        });

        var options = host.Services.GetRequiredService<IOptions<PipelineClusterOptions>>().Value;
        Assert.Equal((PipelineMode.PostgreSql, "blue", "Host=db;Database=pipeline"), (options.Mode, options.ClusterId, options.ConnectionString));
    }

    [Fact]
    public async Task Bad_values_stop_the_host_at_start_with_one_line_per_problem_naming_the_setting()
    {
        using var host = Host(new() { ["Pipeline:Mode"] = "PostgreSql", ["Pipeline:ClusterId"] = " ", ["Pipeline:StreamQueues"] = "0" });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(error.Failures, f => f.Contains("no connection string is set", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Pipeline:ClusterId", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Pipeline:StreamQueues", StringComparison.Ordinal));
        Assert.Equal(3, error.Failures.Count());
    }

    [Fact]
    public async Task A_connection_string_that_does_not_parse_is_one_failure_naming_the_problem()
    {
        using var host = Host(new() { ["Pipeline:Mode"] = "PostgreSql", ["Pipeline:ConnectionString"] = "Host=db;Frobnicate=1" });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("Frobnicate", Assert.Single(error.Failures), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void The_silo_options_validator_lists_the_clusters_problems_and_its_own()
    {
        var options = new PipelineSiloOptions { RecentResults = 0, KeyIdleTimeout = TimeSpan.Zero, ShedKeysAtMemoryPercent = 150, Cluster = new PipelineClusterOptions { StreamQueues = 5000 } };
        var pipeline = PipelineBuilder.Named("orders").Tumbling(TimeSpan.FromSeconds(1)).Count().Build();
        options.Pipelines.AddRange([pipeline, pipeline]);

        var result = new PipelineSiloOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Equal(
            ["Pipeline:StreamQueues must be in [1, 1024]", "Pipeline:RecentResults must be at least 1", "Pipeline:KeyIdleTimeout must be positive",
             "Pipeline:ShedKeysAtMemoryPercent must be above 0 and at most 100 (0 in configuration turns shedding off), not 150", "pipeline 'orders' is defined twice"],
            result.Failures);
    }

    [Fact]
    public void Reading_the_cluster_options_by_hand_reports_the_same_problems_in_one_line()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Pipeline:ClusterId"] = "", ["Pipeline:StreamQueues"] = "0" }).Build();

        var error = Assert.Throws<ArgumentException>(() => PipelineClientConnection.ReadClusterOptions(configuration));
        Assert.Equal("Pipeline:ClusterId must not be empty; Pipeline:StreamQueues must be in [1, 1024]", error.Message);
    }
}
