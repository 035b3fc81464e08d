using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Orleans.Dashboard;
using Orleans.Pipeline.Gateway;

namespace Orleans.Pipeline.Silo;

/// <summary>
/// The Orleans Dashboard in the silo (<c>Pipeline:Dashboard</c>): off by default; when on, served on a port of its own
/// (<c>Url</c>, HTTP/1.1 for browsers) under <see cref="Path"/>, every request with HTTP basic authentication against
/// <c>Username</c> and <c>PasswordHash</c> (<c>sha256:</c> and the hex SHA-256 of the password, as <c>hash-key</c> prints
/// it: the password itself is never configured). Nothing is served without credentials.
/// </summary>
internal sealed record DashboardSettings(string Url, string Username, string PasswordHash)
{
    public const string Section = "Pipeline:Dashboard";
    public const string Path = "/dashboard";

    public int Port => new Uri(Url).Port;

    /// <summary>The dashboard's settings, or null when it is off; throws <see cref="ArgumentException"/> naming a bad or missing value.</summary>
    public static DashboardSettings? Read(IConfiguration configuration)
    {
        if (!configuration.GetValue($"{Section}:Enabled", false)) return null;
        var url = configuration[$"{Section}:Url"] is { Length: > 0 } configured ? configured : "http://127.0.0.1:8081";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || parsed.Scheme != Uri.UriSchemeHttp || parsed.AbsolutePath != "/")
            throw new ArgumentException($"{Section}:Url '{url}' must be an http:// URL with a host and a port and no path, such as http://127.0.0.1:8081");
        var user = configuration[$"{Section}:Username"] is { Length: > 0 } name ? name : "operator";
        var hash = configuration[$"{Section}:PasswordHash"];
        if (hash is null || !ApiKeyHash.IsValid(hash))
            throw new ArgumentException($"{Section}:PasswordHash must be set when the dashboard is enabled: 'sha256:' and 64 hex digits (orleans-pipeline-silo hash-key PASSWORD prints it)");
        return new DashboardSettings(url, user, hash);
    }

    public IPAddress Address()
    {
        var host = new Uri(Url).Host;
        return host is "0.0.0.0" ? IPAddress.Any : host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(host.Trim('[', ']'));
    }

    /// <summary>Whether the request carries this user's password.</summary>
    public bool Authorizes(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
        }
        catch (FormatException)
        {
            return false;
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return false;
        var userMatches = CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(decoded[..colon]), Encoding.UTF8.GetBytes(Username));
        var passwordMatches = CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(ApiKeyHash.Of(decoded[(colon + 1)..])), Encoding.UTF8.GetBytes(PasswordHash));
        return userMatches & passwordMatches;
    }
}

internal static class DashboardHosting
{
    /// <summary>Listens on the dashboard's own port (HTTP/1.1).</summary>
    public static void Listen(WebApplicationBuilder web, DashboardSettings options) =>
        web.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.Address(), options.Port, listen => listen.Protocols = HttpProtocols.Http1));

    /// <summary>Maps the dashboard on its port only, behind basic authentication.</summary>
    public static void Map(WebApplication app, DashboardSettings options)
    {
        app.Use(async (context, next) =>
        {
            if (context.Connection.LocalPort != options.Port)
            {
                await next(context);
                return;
            }

            if (!options.Authorizes(context.Request))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"Orleans.Pipeline dashboard\", charset=\"UTF-8\"";
                return;
            }

            if (!context.Request.Path.StartsWithSegments(Path))
            {
                context.Response.Redirect(Path + "/");
                return;
            }

            await next(context);
        });
        app.MapOrleansDashboard(Path).RequireHost($"*:{options.Port}");
    }

    private const string Path = DashboardSettings.Path;
}
