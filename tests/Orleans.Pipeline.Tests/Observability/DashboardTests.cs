using System.Diagnostics;
using System.Net;
using Grpc.Net.Client;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Tests.PostgreSql;
using Xunit.Abstractions;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Observability;

/// <summary>
/// The Orleans Dashboard in a running silo, when enabled: refused without the operator's credentials, served with
/// them, and rendered by a real browser (Debian's headless Chromium) with the pipeline's grains in its statistics.
/// </summary>
public sealed class DashboardTests(ITestOutputHelper output)
{
    private const string Password = "a-long-operator-password";

    [Fact]
    public async Task The_dashboard_refuses_a_request_without_credentials_and_renders_grain_statistics_in_a_browser()
    {
        var chromium = Chromium();
        var dashboardPort = FreePorts.Next();
        var gatewayUrl = $"http://127.0.0.1:{FreePorts.Next()}";
        await using var silo = await EmbeddedSiloProcess.StartAsync(gatewayUrl, new Dictionary<string, string>
        {
            ["Pipeline__Dashboard__Enabled"] = "true",
            ["Pipeline__Dashboard__Url"] = $"http://127.0.0.1:{dashboardPort}",
            ["Pipeline__Dashboard__PasswordHash"] = ApiKeyHash.Of(Password),
        });

        using var channel = GrpcChannel.ForAddress(gatewayUrl);
        var gateway = new PipelineGatewayClient(channel);
        // Traffic for as long as the test looks: the dashboard's call statistics are of the last seconds.
        using var stopTraffic = new CancellationTokenSource();
        var traffic = Task.Run(async () =>
        {
            for (var round = 0; !stopTraffic.IsCancellationRequested; round++)
            {
                var now = DateTimeOffset.UtcNow;
                await gateway.PublishAsync("demo", Enumerable.Range(0, 200).Select(i =>
                    GatewayEvent.Create($"account-{i % 50}", now.AddMilliseconds(i), ("amount", i), ("user", i % 7), ("latency", 12))));
                await Task.Delay(250, CancellationToken.None);
            }
        });
        await gateway.PublishAsync("demo", [GatewayEvent.Create("account-0", DateTimeOffset.UtcNow, ("amount", 1), ("user", 1), ("latency", 12))]);

        var url = $"http://127.0.0.1:{dashboardPort}/dashboard/";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var anonymous = await http.GetAsync(url);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Contains("Basic", anonymous.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Send(http, url, "operator", "wrong")).StatusCode);
        var page = await Send(http, url, "operator", Password);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("Orleans Dashboard", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The browser: the page's script fetches the statistics and renders them.
        var authenticated = $"http://operator:{Password}@127.0.0.1:{dashboardPort}/dashboard/";
        var screenshot = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-dashboard-{Guid.NewGuid():N}.png");
        string dom = "";
        await Workload.WaitUntilAsync(async () =>
        {
            dom = await RunAsync(chromium, "--dump-dom", "--virtual-time-budget=8000", authenticated);
            return dom.Contains("KeyWindowGrain", StringComparison.Ordinal);
        }, "the dashboard rendering the key grains' statistics");
        Assert.Contains("Methods with Most Calls", dom, StringComparison.Ordinal);
        await RunAsync(chromium, $"--screenshot={screenshot}", "--window-size=1400,1000", "--virtual-time-budget=8000", authenticated);
        await stopTraffic.CancelAsync();
        await traffic;
        Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot is empty");
        output.WriteLine($"screenshot: {screenshot}");
    }

    private static Task<HttpResponseMessage> Send(HttpClient http, string url, string user, string password)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = new("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{user}:{password}")));
        return http.SendAsync(request);
    }

    [Fact]
    public async Task The_demo_serves_the_dashboard_behind_credentials_while_its_pipeline_works()
    {
        var dashboardPort = FreePorts.Next();
        await using var demo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__Dashboard__Enabled"] = "true",
            ["Pipeline__Dashboard__Url"] = $"http://127.0.0.1:{dashboardPort}",
            ["Pipeline__Dashboard__PasswordHash"] = ApiKeyHash.Of(Password),
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Logging__LogLevel__Default"] = "Error",
        }, "demo", "--seconds", "60", "--keys", "200", "--rate", "2000");
        await demo.WaitForOutputAsync($"dashboard on http://127.0.0.1:{dashboardPort}/dashboard/", TimeSpan.FromSeconds(90));

        var url = $"http://127.0.0.1:{dashboardPort}/dashboard/";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await Workload.WaitUntilAsync(async () =>
        {
            try
            {
                return (await Send(http, url, "operator", Password)).StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "the demo's dashboard answering");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(url)).StatusCode);
        Assert.Contains("Orleans Dashboard", await (await Send(http, url, "operator", Password)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static string Chromium() =>
        File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium"
            : throw new InvalidOperationException("Debian's chromium is not installed (apt-get install -y chromium); the dashboard test renders the page in it");

    /// <summary>Headless Chromium, without the network calls it makes by default (this machine's network is closed).</summary>
    private static async Task<string> RunAsync(string chromium, params string[] arguments)
    {
        var profile = Directory.CreateTempSubdirectory("orleans-pipeline-chromium-");
        try
        {
            var start = new ProcessStartInfo(chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var flag in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", $"--user-data-dir={profile.FullName}" })
                start.ArgumentList.Add(flag);
            foreach (var argument in arguments) start.ArgumentList.Add(argument);
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            return await stdout;
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }
}
