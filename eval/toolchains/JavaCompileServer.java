import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * Long-lived javac for HumanEvalPack: one JVM compiles every sample, so each costs tens of
 * milliseconds instead of a JVM start plus a cold compiler (the warm JIT does the rest).
 *
 * Protocol (one request per line on stdin): the absolute path of a sample directory holding
 * Main.java. The server compiles it with UTF-8 into DIR/classes (its own output directory, since
 * every sample defines Solution and Main) and answers on stdout with one line
 * "OK" or "ERR <n>" followed by n bytes (UTF-8) of diagnostics. No annotation processing.
 */
public final class JavaCompileServer {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            System.err.println("no system Java compiler (a JRE without javac?)");
            System.exit(2);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        out.println("READY");
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            Path dir = Paths.get(line);
            StringWriter diagnostics = new StringWriter();
            boolean ok;
            try {
                Path classes = dir.resolve("classes");
                Files.createDirectories(classes);
                StandardJavaFileManager files = javac.getStandardFileManager(null, null, StandardCharsets.UTF_8);
                List<String> options = Arrays.asList(
                    "-encoding", "UTF-8", "-d", classes.toString(), "-proc:none", "-Xlint:none", "-nowarn");
                ok = javac.getTask(diagnostics, files, null, options, null,
                    files.getJavaFileObjects(dir.resolve("Main.java").toFile())).call();
                files.close();
            } catch (Throwable e) {
                ok = false;
                diagnostics.write("compile server: " + e);
            }
            if (ok) {
                out.println("OK");
            } else {
                byte[] text = diagnostics.toString().getBytes(StandardCharsets.UTF_8);
                out.println("ERR " + text.length);
                out.write(text);
                out.println();
            }
            out.flush();
        }
    }
}
