# bench/locality's figures (gnuplot 5.4). Called by bench/locality_report.sh
# with: out (results dir), series (Figure 5's data sets, "scenario_topology"
# words: out/plot/fig5_<word>.dat holding "N median min max"), size_mb (the
# image in MB), lan and up (Mbit/s), nmax, base and sd (the samples of the
# baseline and of the fastest edgepull run at N = nmax; "" when absent) and
# sdname (that run's label).
#
# The model of the paper's Figure 2: N nodes pulling at once from one
# registry each get min(L, U / N), so the locality is provisioned in
# S·8 / min(L, U / N) seconds; a streamed deployment moves the image once at
# the slower of the two links, S·8 / min(L, U), whatever N.

set terminal pngcairo size 900,560 font "DejaVu Sans,11" noenhanced
set datafile separator whitespace
set grid
set key top left

# A series' title from its data set's name: "edgepull-pull_tree2" -> "edgepull-pull, tree2".
us(s) = strstrt(s, "_")
label(s) = s eq "baseline_-" ? "plain pulls (baseline)" : (us(s) ? s[1:us(s) - 1].", ".s[us(s) + 1:] : s)

base_model(n, s) = s * 8 / (lan < up / n ? lan : up / n)
sd_model(s) = s * 8 / (lan < up ? lan : up)

# --- Figure 2: the paper's model for its 500 MB image, up to 1000 nodes --------
set output out."/fig2.png"
set title sprintf("Fig. 2 (model): 500 MB to N nodes at once, uplink %g Mbit/s, ports %g Mbit/s", up, lan)
set xlabel "nodes in the locality"
set ylabel "locality provisioning time (s)"
set logscale xy
set xrange [1:1000]
set samples 400
plot base_model(x, 500) title "plain pulls from the registry" lw 2, \
     sd_model(500) title "streamed deployment (one copy, pipelined)" lw 2 dt 2
unset logscale

# --- Figure 5: measured time against N, with the model beside it --------------
set output out."/fig5.png"
set title sprintf("Fig. 5: provisioning a %.0f MB image (median, min-max)", size_mb)
set xlabel "nodes in the locality (N)"
set ylabel "locality provisioning time (s)"
set xrange [0:nmax + 1]
set yrange [0:*]
set key top left
set samples nmax * 20 + 20
plot for [i = 1:words(series)] out."/plot/fig5_".word(series, i).".dat" \
       using 1:2:3:4 with yerrorlines lw 2 pt 7 title label(word(series, i)), \
     base_model(x, size_mb) title "model: plain pulls (Fig. 2)" lw 1 dt 2 lc rgb "gray40", \
     sd_model(size_mb) title "model: one streamed copy" lw 1 dt 3 lc rgb "gray40"

set datafile separator ","
set xrange [0:*]
set yrange [0:*]
set xlabel "time since the rollout started (s)"
set ylabel "Mbit/s"

# --- Figures 6 and 7: throughput over time, from the runs that exist ----------
# series(f, col, t, style): one plot clause for column col of samples file f.
series(f, col, t, style) = sprintf("'%s' every ::1 using 1:%d with lines %s title '%s'", f, col, style, t)
join(a, b) = a eq "" ? b : (b eq "" ? a : a.", ".b)

set key center right
set output out."/fig6.png"
set title sprintf("Fig. 6: uplink (cloud to gateway) throughput, N = %d", nmax)
c6 = join(base eq "" ? "" : series(base, 2, "plain pulls: every node from the registry", "lw 2"), \
          sd eq "" ? "" : series(sd, 2, "edgepull (".sdname.")", "lw 2"))
if (c6 ne "") { eval("plot ".c6) }

set output out."/fig7.png"
set title sprintf("Fig. 7: node n1's LAN port, N = %d (port %g Mbit/s)", nmax, lan)
set yrange [0:lan * 1.15]
c7 = join(base eq "" ? "" : series(base, 4, "plain pulls: n1 receives", "lw 2"), \
          sd eq "" ? "" : join(series(sd, 4, "edgepull: n1 receives", "lw 2"), \
                               series(sd, 5, "edgepull: n1 forwards", "lw 1 dt 2")))
if (c7 ne "") { eval("plot ".c7.sprintf(", %g with lines lc rgb 'gray40' dt 3 title 'port speed'", lan)) }
