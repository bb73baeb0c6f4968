"""Why a run ended, as its meta.json keeps it: English, like the logs (the CLI prints it as is).

The templates are marked for the catalog; the pages show a stored reason in the visitor's language
with `lib.i18n.translate_filled(reason)`. Plain strings: no Keras, no TensorFlow.
"""

from lib.i18n import N_

COMPLETED_ONE, COMPLETED = N_("Completed {epochs} epoch."), N_("Completed {epochs} epochs.")
STOPPED_BY_REQUEST = N_("Stopped by request after {images:,} images; weights so far kept.")
EARLY_STOPPED = N_("Early stopping: val_loss did not improve for {patience} epochs; best weights restored.")
TARGET_REACHED = N_("Target reached at epoch {epoch}: {metric} {value} {sign} {target}.")
DIVERGED = N_("Training diverged: {what}, so it was stopped. The likely cause is a learning rate too high for {optimizer} "
              "({learning_rate}): each step overshoots and the loss explodes. Lower the learning rate ({fix}) and train "
              "again.")
DIVERGED_RAW = N_("Training diverged: {what}, so it was stopped. The likely cause is a learning rate too high for "
                  "{optimizer} ({learning_rate}): each step overshoots and the loss explodes. Lower the learning rate "
                  "({fix}) and train again. Turning normalization on helps too: raw 0-255 pixels make every step 255 "
                  "times larger.")
# A divergence's {what} (lib.training.callbacks) and {fix} (lib.training.loop), translated with the reason.
LOSS_BECAME = N_("the loss became {loss} in epoch {epoch}")
LOSS_NOT_A_NUMBER = N_("the loss became {loss} (not a number) in epoch {epoch}")
LOSS_ROSE = N_("the loss rose from {start} to {loss} by the end of epoch {epoch}, with {accuracy} accuracy (chance is "
               "{chance})")
LOSS_SHOT_UP = N_("the loss shot up from {start} to {loss} in epoch {epoch} and the model ended it at {accuracy} "
                  "accuracy (chance is {chance})")
FIX_USUAL = N_("try {usual}, the usual start for {optimizer}")
FIX_LOWER = N_("try ten times lower, {lower}")
STOP_REASONS = (COMPLETED_ONE, COMPLETED, STOPPED_BY_REQUEST, EARLY_STOPPED, TARGET_REACHED, DIVERGED, DIVERGED_RAW)
