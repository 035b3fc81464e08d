using Microsoft.Extensions.Configuration;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests;

/// <summary>Pipelines defined in configuration and in C# come out the same, and bad definitions name their problem.</summary>
public sealed class PipelineConfigurationTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Fact]
    public void Configuration_and_the_fluent_definition_give_the_same_pipeline()
    {
        var fromConfig = PipelineConfiguration.Read(Config(
            ("Pipeline:Pipelines:payments:Window:Kind", "Hopping"),
            ("Pipeline:Pipelines:payments:Window:Size", "00:01:00"),
            ("Pipeline:Pipelines:payments:Window:Slide", "00:00:15"),
            ("Pipeline:Pipelines:payments:MaxOutOfOrderness", "00:00:05"),
            ("Pipeline:Pipelines:payments:AllowedLateness", "00:00:30"),
            ("Pipeline:Pipelines:payments:IdleTimeout", "00:00:10"),
            ("Pipeline:Pipelines:payments:Aggregations:0:Function", "count"),
            ("Pipeline:Pipelines:payments:Aggregations:1:Function", "sum"),
            ("Pipeline:Pipelines:payments:Aggregations:1:Field", "amount"),
            ("Pipeline:Pipelines:payments:Aggregations:2:Function", "quantile"),
            ("Pipeline:Pipelines:payments:Aggregations:2:Field", "latency"),
            ("Pipeline:Pipelines:payments:Aggregations:2:Levels:0", "0.5"),
            ("Pipeline:Pipelines:payments:Aggregations:2:Levels:1", "0.99")));

        var fluent = PipelineBuilder.Named("payments")
            .Hopping(TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(15))
            .Disorder(TimeSpan.FromSeconds(5)).AllowedLateness(TimeSpan.FromSeconds(30)).IdleTimeout(TimeSpan.FromSeconds(10))
            .Count().Sum("amount").Quantiles("latency", 0.5, 0.99)
            .Build();

        var read = Assert.Single(fromConfig);
        Assert.Equal(fluent.Windowing.Window, read.Windowing.Window);
        Assert.Equal(fluent.Windowing.Layout, read.Windowing.Layout);
        Assert.Equal((60_000L, 15_000L, 5_000L, 30_000L, (long?)10_000L),
            (read.Windowing.Window.SizeMs, read.Windowing.Window.SlideMs, read.Windowing.MaxOutOfOrdernessMs, read.Windowing.AllowedLatenessMs, read.Windowing.IdleTimeoutMs));
        Assert.Equal(["count", "sum_amount", "quantile_latency_p50", "quantile_latency_p99"], read.OutputNames());
    }

    [Fact]
    public void A_chained_pipeline_in_configuration_equals_its_fluent_definition()
    {
        var fromConfig = PipelineConfiguration.Read(Config(
            ("Pipeline:Pipelines:hot-items:Input:Pipeline", "views"),
            ("Pipeline:Pipelines:hot-items:Input:KeyBy", "all"),
            ("Pipeline:Pipelines:hot-items:Window:Kind", "Hopping"),
            ("Pipeline:Pipelines:hot-items:Window:Size", "00:00:10"),
            ("Pipeline:Pipelines:hot-items:Window:Slide", "00:00:02"),
            ("Pipeline:Pipelines:hot-items:Aggregations:0:Function", "top"),
            ("Pipeline:Pipelines:hot-items:Aggregations:0:Field", "count"),
            ("Pipeline:Pipelines:hot-items:Aggregations:0:Arguments:0", "3")));

        var fluent = PipelineBuilder.Named("hot-items").From("views", "all").Hopping(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2))
            .Aggregate(Orleans.Pipeline.Windowing.Aggregation.AggregationSpec.Top("count", 3)).Build();

        var read = Assert.Single(fromConfig);
        Assert.Equal(fluent.Input, read.Input);
        Assert.Equal(fluent.Windowing.Layout, read.Windowing.Layout);
        Assert.Equal(["top_count_1", "top_count_2", "top_count_3"], read.OutputNames());
    }

    [Fact]
    public void A_configuration_with_problems_reports_each_with_its_pipelines_name()
    {
        var error = Assert.Throws<ArgumentException>(() => PipelineConfiguration.Read(Config(
            ("Pipeline:Pipelines:payments:Window:Kind", "Tumbling"),
            ("Pipeline:Pipelines:payments:Window:Size", "00:00:00"),
            ("Pipeline:Pipelines:payments:Aggregations:0:Function", "sum"),
            ("Pipeline:Pipelines:clicks:Window:Kind", "Session"),
            ("Pipeline:Pipelines:clicks:Window:Gap", "00:00:30"),
            ("Pipeline:Pipelines:clicks:Aggregations:0:Function", "median"))));

        Assert.Contains("pipeline 'payments': window size must be > 0", error.Message, StringComparison.Ordinal);
        Assert.Contains("pipeline 'payments': aggregation 'sum': function 'sum' needs a field", error.Message, StringComparison.Ordinal);
        Assert.Contains("pipeline 'clicks': unknown aggregation function 'median'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_fluent_definition_without_a_window_says_so()
    {
        var error = Assert.Throws<ArgumentException>(() => PipelineBuilder.Named("payments").Count().Build());
        Assert.Contains("pipeline 'payments': no window", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_catalog_refuses_duplicate_or_badly_named_pipelines()
    {
        var pipeline = PipelineBuilder.Named("payments").Tumbling(TimeSpan.FromSeconds(1)).Count().Build();
        var error = Assert.Throws<ArgumentException>(() => new PipelineCatalog([pipeline, pipeline, pipeline with { Name = "Bad Name" }]));
        Assert.Contains("pipeline 'payments' is defined more than once", error.Message, StringComparison.Ordinal);
        Assert.Contains("pipeline 'Bad Name': name must match", error.Message, StringComparison.Ordinal);
        Assert.Equal(WindowKind.Tumbling, pipeline.Windowing.Window.Kind);
    }
}
