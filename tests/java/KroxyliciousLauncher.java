import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.config.Configuration;
import io.kroxylicious.proxy.internal.config.Features;

/**
 * Runs Kroxylicious from a YAML configuration file, for the benchmark's peer proxies.
 *
 * <p>Kroxylicious's own command-line entry point (kroxylicious-app) is not published to Maven
 * Central; its runtime is. This does what that entry point does, minus the banner: parse the file
 * with Kroxylicious's ConfigParser, start a KafkaProxy with the default feature set, and block
 * until the JVM is asked to stop (SIGTERM runs the shutdown hook).
 *
 * <p>Usage: {@code java -cp CLASSES:JARS/* KroxyliciousLauncher proxy.yaml}
 */
public final class KroxyliciousLauncher {

    private KroxyliciousLauncher() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: KroxyliciousLauncher CONFIG.yaml");
            System.exit(2);
        }
        ConfigParser parser = new ConfigParser();
        Configuration configuration;
        try (InputStream yaml = Files.newInputStream(Path.of(args[0]))) {
            configuration = parser.parseConfiguration(yaml);
        }
        KafkaProxy proxy = new KafkaProxy(parser, configuration, Features.defaultFeatures());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(proxy), "launcher-shutdown"));
        proxy.startup();
        System.out.println("KroxyliciousLauncher: proxy started from " + args[0]);
        proxy.block();
    }

    private static void stop(KafkaProxy proxy) {
        try {
            proxy.shutdown();
        }
        catch (RuntimeException alreadyStopped) {
            // Shut down already (block() returned): nothing left to stop.
        }
    }
}
