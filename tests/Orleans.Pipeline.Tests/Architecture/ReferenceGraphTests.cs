using System.Xml.Linq;

namespace Orleans.Pipeline.Tests.Architecture;

/// <summary>
/// Dependencies point inward: the pure windowing engine references nothing of ours and no Orleans runtime; the
/// abstractions only the engine; storage implementations (PostgreSQL) only the abstractions, never the grains; the
/// gateway no database; the gateway's .NET client no Orleans runtime and no database driver.
/// </summary>
public sealed class ReferenceGraphTests
{
    /// <summary>Layers, inner first: a project may reference projects of a lower layer only.</summary>
    private static readonly Dictionary<string, int> Layers = new(StringComparer.Ordinal)
    {
        ["Orleans.Pipeline.Windowing"] = 0,
        ["Orleans.Pipeline.Abstractions"] = 1,
        ["Orleans.Pipeline.Gateway.Contracts"] = 1,
        ["Orleans.Pipeline.Grains"] = 2,
        ["Orleans.Pipeline.PostgreSql"] = 2,
        ["Orleans.Pipeline.Client"] = 2,
        ["Orleans.Pipeline.Client.Grpc"] = 2,
        ["Orleans.Pipeline.Gateway"] = 3,
        ["Orleans.Pipeline.Hosting"] = 3,
        ["Orleans.Pipeline.Silo"] = 4,
    };

    /// <summary>Packages a project must not use (directly).</summary>
    private static readonly Dictionary<string, string[]> Forbidden = new(StringComparer.Ordinal)
    {
        ["Orleans.Pipeline.Windowing"] = ["Microsoft.Orleans.Server", "Microsoft.Orleans.Client", "Microsoft.Orleans.Runtime", "Microsoft.Orleans.Sdk", "Microsoft.Orleans.Streaming", "Npgsql"],
        ["Orleans.Pipeline.Abstractions"] = ["Microsoft.Orleans.Server", "Microsoft.Orleans.Runtime", "Npgsql", "Microsoft.Data.Sqlite"],
        ["Orleans.Pipeline.Gateway"] = ["Npgsql", "Microsoft.Data.Sqlite", "Microsoft.Orleans.Server"],
        ["Orleans.Pipeline.Client"] = ["Npgsql", "Microsoft.Data.Sqlite", "Microsoft.Orleans.Server", "Microsoft.Orleans.Clustering.AdoNet", "Microsoft.Orleans.Streaming.AdoNet"],
        ["Orleans.Pipeline.Client.Grpc"] = ["Npgsql", "Microsoft.Data.Sqlite", "Microsoft.Orleans.Client", "Microsoft.Orleans.Sdk", "Microsoft.Orleans.Server"],
    };

    [Fact]
    public void No_project_references_a_project_of_its_own_or_a_higher_layer_or_a_package_its_layer_must_not_use()
    {
        var graph = ReadGraph(RepositoryRoot());
        Assert.Contains("Orleans.Pipeline.Windowing", graph.Keys);
        Assert.Contains("Orleans.Pipeline.PostgreSql", graph.Keys);
        Assert.Empty(Violations(graph));
    }

    [Fact]
    public void The_check_reports_an_abstraction_that_gains_a_reference_to_the_grains_a_storage_project_that_references_the_grains_and_a_deployed_project_that_references_test_support()
    {
        var graph = ReadGraph(RepositoryRoot());
        var broken = graph.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        broken["Orleans.Pipeline.Abstractions"] = broken["Orleans.Pipeline.Abstractions"] with { Projects = [.. broken["Orleans.Pipeline.Abstractions"].Projects, "Orleans.Pipeline.Grains"] };
        broken["Orleans.Pipeline.PostgreSql"] = broken["Orleans.Pipeline.PostgreSql"] with { Projects = [.. broken["Orleans.Pipeline.PostgreSql"].Projects, "Orleans.Pipeline.Grains"] };
        broken["Orleans.Pipeline.Windowing"] = broken["Orleans.Pipeline.Windowing"] with { Packages = [.. broken["Orleans.Pipeline.Windowing"].Packages, "Microsoft.Orleans.Server"] };
        // The throwaway PostgreSQL server (it runs initdb and pg_ctl as another user) must stay out of what users deploy.
        Assert.Contains("Orleans.Pipeline.Testing", graph.Keys);
        broken["Orleans.Pipeline.Silo"] = broken["Orleans.Pipeline.Silo"] with { Projects = [.. broken["Orleans.Pipeline.Silo"].Projects, "Orleans.Pipeline.Testing"] };

        var violations = Violations(broken);
        Assert.Contains(violations, v => v.Contains("Orleans.Pipeline.Abstractions (layer 1) references Orleans.Pipeline.Grains (layer 2)", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains("Orleans.Pipeline.PostgreSql (layer 2) references Orleans.Pipeline.Grains (layer 2)", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains("Orleans.Pipeline.Windowing uses package Microsoft.Orleans.Server", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Contains("Orleans.Pipeline.Silo references Orleans.Pipeline.Testing, which has no layer", StringComparison.Ordinal));
    }

    private sealed record Project(string[] Projects, string[] Packages);

    private static List<string> Violations(Dictionary<string, Project> graph)
    {
        List<string> violations = [];
        foreach (var (name, project) in graph)
        {
            if (!Layers.TryGetValue(name, out var layer)) continue; // tests and tools may reference anything
            foreach (var reference in project.Projects)
            {
                if (!Layers.TryGetValue(reference, out var other)) violations.Add($"{name} references {reference}, which has no layer (a test or tool project)");
                else if (other >= layer) violations.Add($"{name} (layer {layer}) references {reference} (layer {other})");
            }

            foreach (var package in project.Packages.Where(p => Forbidden.GetValueOrDefault(name, []).Contains(p, StringComparer.OrdinalIgnoreCase)))
                violations.Add($"{name} uses package {package}");
        }

        return violations;
    }

    private static Dictionary<string, Project> ReadGraph(string root)
    {
        var graph = new Dictionary<string, Project>(StringComparer.Ordinal);
        foreach (var folder in new[] { "src", "client", "silo", "tests" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, folder), "*.csproj", SearchOption.AllDirectories))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ||
                    file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)) continue;
                var xml = XDocument.Load(file);
                var projects = xml.Descendants("ProjectReference")
                    .Where(r => (string?)r.Attribute("ReferenceOutputAssembly") != "false")
                    .Select(r => Path.GetFileNameWithoutExtension(((string)r.Attribute("Include")!).Replace('\\', '/')))
                    .ToArray();
                var packages = xml.Descendants("PackageReference").Select(r => (string)r.Attribute("Include")!).ToArray();
                graph[Path.GetFileNameWithoutExtension(file)] = new Project(projects, packages);
            }
        }

        return graph;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orleans.Pipeline.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException($"no Orleans.Pipeline.sln above {AppContext.BaseDirectory}");
    }
}
