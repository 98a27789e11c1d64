//! `keyward drill`: proves each way this box's key can be recovered (keyward_box::drill) and
//! prints a line per path; notes what was proven beside the keybox and, with `--textfile`,
//! writes it for node_exporter. Exit 11 names every broken path.

use keyward_box::drill::{self, Outcome};
use serde_json::json;

use crate::cli::DrillArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use crate::output::warn;
use crate::secret_input::{code_from, prompt_code};

/// Runs `drill`.
pub fn run(ctx: &Context, args: &DrillArgs) -> CliResult {
    let about = format!(
        "keybox {}, to confirm you still have it: type your recovery code",
        ctx.keybox.display()
    );
    let code = match (&args.code_file, args.ask) {
        (Some(path), _) => Some(code_from(&ctx.reader, Some(path), &about)?),
        (None, true) => Some(prompt_code(&about)?),
        (None, false) => None,
    };
    let result = drill::run(&ctx.keybox, &ctx.reader, code.as_ref())?;
    drop(code);
    for path in &result.paths {
        let line = match &path.outcome {
            Outcome::Ok(detail) => format!("ok          {}: {detail}", path.name),
            Outcome::Broken(why) => format!("BROKEN      {}: {why}", path.name),
            Outcome::NotProven(needs) => format!("not proven  {}: needs {needs}", path.name),
        };
        ctx.out.line(line)?;
    }
    // What was proven is noted even when something is broken: the textfile's ages need it. A
    // note or textfile that cannot be written is said; the verdict and the report stand.
    let state = drill::note(&ctx.keybox, &result).unwrap_or_else(|e| {
        warn(&format!("the drill's state beside the keybox is not written ({e})"));
        drill::DrillState::default()
    });
    if let Some(file) = &args.textfile
        && let Err(e) = drill::write_textfile(file, &result, &state)
    {
        warn(&format!("the textfile {} is not written ({e})", file.display()));
    }
    // The evidence goes to the hubs; a hub that cannot take it is said, and the drill's verdict
    // stands (a hub that is down is the escrow path's broken line already).
    if !args.no_report {
        match drill::report(&ctx.keybox, &ctx.reader, &result) {
            Ok(Some(recorded)) => ctx.out.line(format!(
                "The result went to the hubs as signed evidence ({} paths)",
                recorded.paths
            ))?,
            Ok(None) => {}
            Err(e) => warn(&format!("the result did not reach the hubs: {e}")),
        }
    }
    ctx.out.json(
        &json!({ "at": result.at, "paths": result.paths, "last_success": state.last_success }),
    )?;
    let broken: Vec<String> = result.broken().map(|p| p.name.clone()).collect();
    match broken.is_empty() {
        true => Ok(()),
        false => Err(CliError::DrillFound(broken)),
    }
}
