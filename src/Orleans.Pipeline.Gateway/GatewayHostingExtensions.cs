using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.Gateway;

/// <summary>Hosting the gateway: in a silo (one process) or on its own as an Orleans client.</summary>
public static class GatewayHostingExtensions
{
    /// <summary>Binds and validates <see cref="GatewayOptions"/>; throws <see cref="ArgumentException"/> listing every problem.</summary>
    public static GatewayOptions ReadGatewayOptions(IConfiguration configuration)
    {
        var options = new GatewayOptions();
        try
        {
            configuration.GetSection(GatewayOptions.Section).Bind(options);
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"invalid '{GatewayOptions.Section}' settings: {e.Message}", e);
        }

        var result = new GatewayOptionsValidator().Validate(null, options);
        return result.Failed ? throw new ArgumentException(string.Join("; ", result.Failures)) : options;
    }

    /// <summary>
    /// The gateway's services with its options bound from <paramref name="configuration"/>'s <c>Pipeline:Gateway</c>
    /// section the .NET way (<c>AddOptions().Bind()</c>, validated by <see cref="GatewayOptionsValidator"/> when the
    /// host starts: one line per problem). For hosts that configure the gateway from their own configuration.
    /// </summary>
    public static IServiceCollection AddPipelineGateway(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<GatewayOptions>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        // The instance the gateway's services take: the bound, validated options.
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<GatewayOptions>>().Value);
        return AddGatewayServices(services, sp => sp.GetRequiredService<GatewayOptions>());
    }

    /// <summary>
    /// The gateway's services: the gRPC service with JSON transcoding, the standard health service (healthy while the
    /// cluster answers) and reflection. Needs an <see cref="IClusterClient"/> (the silo's own, or a client's). In cluster
    /// mode, register the stores the gateways share first (an <see cref="Storage.IRequestLedger"/>, so a retry through
    /// any gateway publishes nothing twice, and an <see cref="Storage.IResultChangeReader"/>, so subscribers resume from
    /// the results); without them, request ids are remembered by this process and subscribers follow the live results.
    /// </summary>
    public static IServiceCollection AddPipelineGateway(this IServiceCollection services, GatewayOptions options)
    {
        services.AddSingleton(options);
        return AddGatewayServices(services, _ => options);
    }

    private static IServiceCollection AddGatewayServices(IServiceCollection services, Func<IServiceProvider, GatewayOptions> options)
    {
        services.AddGrpc(o => o.Interceptors.Add<GatewayMetricsInterceptor>()).AddJsonTranscoding();
        // Oversized requests are refused by the service with INVALID_ARGUMENT; the transport limit only stops abuse.
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>()
            .Configure<IServiceProvider>((grpc, sp) => grpc.MaxReceiveMessageSize = options(sp).MaxRequestBytes * 2);
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck<ClusterHealthCheck>("cluster");
        services.AddSingleton<GatewayAccess>();
        services.AddSingleton<GatewayLimits>();
        services.AddSingleton(sp => new RecentRequests(options(sp).RequestIdRetention, options(sp).MaxRememberedRequestIds));
        services.AddSingleton(sp => new PipelineClient(sp.GetRequiredService<IClusterClient>(),
            new PipelineClientOptions { Linger = options(sp).Linger > TimeSpan.Zero ? options(sp).Linger : TimeSpan.FromMilliseconds(1) }));
        return services;
    }

    /// <summary>Maps the gateway, health and reflection services.</summary>
    public static IEndpointRouteBuilder MapPipelineGateway(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<GatewayService>();
        endpoints.MapGrpcHealthChecksService();
        var options = endpoints.ServiceProvider.GetRequiredService<GatewayOptions>();
        if (options.EnableReflection) endpoints.MapGrpcReflectionService();
        if (options.ApiKeys.Count == 0)
        {
            endpoints.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Orleans.Pipeline.Gateway")
                .LogWarning("The gateway has no API keys configured ({Section}:ApiKeys): every caller may publish and read every pipeline", GatewayOptions.Section);
        }

        return endpoints;
    }

    /// <summary>
    /// Listens on the gateway URL: with TLS, HTTP/2 (gRPC) and HTTP/1.1 (JSON) on one port; in clear text HTTP/2 only,
    /// plus <see cref="GatewayOptions.Http1Url"/> for HTTP/1.1 when set.
    /// </summary>
    public static void ListenGateway(this KestrelServerOptions kestrel, GatewayOptions options)
    {
        var url = new Uri(options.Url);
        kestrel.Listen(Address(url), url.Port, listen =>
        {
            if (url.Scheme == "https")
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(options.Certificate!.Path!, options.Certificate.Password);
            }
            else
            {
                listen.Protocols = HttpProtocols.Http2;
            }
        });
        if (options.Http1Url is { } http1Url)
        {
            var http1 = new Uri(http1Url);
            kestrel.Listen(Address(http1), http1.Port, listen => listen.Protocols = HttpProtocols.Http1);
        }
    }

    private static IPAddress Address(Uri url) =>
        url.Host is "0.0.0.0" or "*" or "+" ? IPAddress.Any : url.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(url.Host);

    /// <summary>Healthy while the cluster answers a call.</summary>
    private sealed class ClusterHealthCheck(IClusterClient cluster) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var pipelines = await cluster.GetGrain<IPipelineCatalogGrain>(0).GetPipelinesAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
                return HealthCheckResult.Healthy($"{pipelines.Length} pipeline(s)");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return HealthCheckResult.Unhealthy("the cluster does not answer", e);
            }
        }
    }
}
