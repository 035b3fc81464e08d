using System.Net;
using System.Net.Sockets;

namespace Orleans.Pipeline.Testing;

/// <summary>Ports for silos, gateways and servers started by tests, tools and benchmarks.</summary>
public static class FreePorts
{
    /// <summary>A TCP port of 127.0.0.1 that nothing listens on right now (the system's choice, released at once).</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
