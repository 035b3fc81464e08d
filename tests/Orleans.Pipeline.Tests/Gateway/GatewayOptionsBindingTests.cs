using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Pipeline.Gateway;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// The gateway's options bound the .NET way (<c>AddPipelineGateway(configuration)</c>): the section's values reach the
/// gateway, and bad ones stop the host at start with one line per problem, each naming its setting.
/// </summary>
public sealed class GatewayOptionsBindingTests
{
    private static HostApplicationBuilder Host(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddPipelineGateway(builder.Configuration);
        return builder;
    }

    [Fact]
    public void The_sections_values_reach_the_gateway()
    {
        using var host = Host(new() { ["Pipeline:Gateway:MaxEventsPerRequest"] = "123", ["Pipeline:Gateway:EnableReflection"] = "false" }).Build();

        var options = host.Services.GetRequiredService<GatewayOptions>();
        Assert.Equal((123, false), (options.MaxEventsPerRequest, options.EnableReflection));
    }

    [Fact]
    public async Task Bad_values_stop_the_host_at_start_with_one_line_per_problem_naming_the_setting()
    {
        using var host = Host(new() { ["Pipeline:Gateway:Url"] = "ftp://gateway", ["Pipeline:Gateway:PublishTimeout"] = "-00:00:01" }).Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(error.Failures, f => f.Contains("Pipeline:Gateway:Url 'ftp://gateway'", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Pipeline:Gateway:PublishTimeout", StringComparison.Ordinal));
    }
}
