; sdcl-batch.scm — run sdcl over every image in a folder (script-fu, GIMP 3).
;
; Each image is opened, gets a new layer from img2img (or generate) over its
; active layer, and is written flattened as PNG, under the same name, into
; the output folder. From a shell:
;
;   gimp-console-3.0 -i --batch-interpreter=plug-in-script-fu-eval --quit -b \
;     '(script-fu-sdcl-batch "photos" "out" "img2img" "a watercolour painting" "" "" 0.5 20 -1)'
;
; Arguments: input folder, output folder, mode ("img2img" or "generate"; 0
; and 1 as the dialog's option gives them), prompt, negative prompt, model
; file ("": sdcl's default model), strength (img2img), steps, seed (-1: a
; random one per image). In GIMP: Filters > Generative > sdcl Batch Folder...
; Prints one line per image, and fails at the first image that fails.

(define (sdcl-batch-file-name path)
  ; "dir/name.ext" -> "name.ext"
  (car (reverse (strbreakup path "/"))))

(define (sdcl-batch-basename path)
  ; "dir/name.ext" -> "name"
  (let ((parts (strbreakup (sdcl-batch-file-name path) ".")))
    (if (> (length parts) 1)
        (unbreakupstr (reverse (cdr (reverse parts))) ".")
        (car parts))))

(define (sdcl-batch-image? path)
  (let ((parts (strbreakup (sdcl-batch-file-name path) ".")))
    (and (> (length parts) 1)
         (member (string-downcase (car (reverse parts)))
                 '("png" "jpg" "jpeg" "webp" "tif" "tiff" "bmp" "gif" "xcf")))))

(define (sdcl-batch-insert x sorted)
  (cond ((null? sorted) (list x))
        ((string<? x (car sorted)) (cons x sorted))
        (else (cons (car sorted) (sdcl-batch-insert x (cdr sorted))))))

(define (sdcl-batch-images dir)
  ; the image files in dir, by name
  (let loop ((files (car (file-glob #:pattern (string-append dir "/*") #:filename-encoding TRUE))) (out '()))
    (cond ((null? files) out)
          ((sdcl-batch-image? (car files)) (loop (cdr files) (sdcl-batch-insert (car files) out)))
          (else (loop (cdr files) out)))))

(define (sdcl-batch-int x)
  (inexact->exact (round x)))

(define (sdcl-batch-one in-file out-file mode prompt negative model strength steps seed)
  (let* ((image (car (gimp-file-load RUN-NONINTERACTIVE in-file)))
         (drawables (car (gimp-image-get-selected-layers image)))
         (drawables (if (> (vector-length drawables) 0)
                        drawables
                        (car (gimp-image-get-layers image))))
         (common (list #:run-mode RUN-NONINTERACTIVE
                       #:image image
                       #:drawables (vector (vector-ref drawables 0))
                       #:prompt prompt
                       #:negative-prompt negative
                       #:steps (sdcl-batch-int steps)
                       #:seed (sdcl-batch-int seed)))
         (with-model (if (equal? model "") common (append common (list #:model model))))
         (result (if (equal? mode "generate")
                     (apply plug-in-sdcl-generate with-model)
                     (apply plug-in-sdcl-img2img
                            (append with-model (list #:strength strength))))))
    (gimp-image-flatten image)
    (gimp-file-save RUN-NONINTERACTIVE image out-file -1)
    (gimp-image-delete image)
    (display (string-append in-file " -> " out-file
                            " (seed " (number->string (cadr result)) ")"))
    (newline)))

(define (script-fu-sdcl-batch in-dir out-dir mode prompt negative model strength steps seed)
  (let* ((mode (cond ((equal? mode 1) "generate")
                     ((equal? mode 0) "img2img")
                     (else mode)))
         (images (sdcl-batch-images in-dir)))
    (if (not (or (equal? mode "img2img") (equal? mode "generate")))
        (error (string-append "sdcl batch: mode is \"img2img\" or \"generate\", not " mode)))
    (if (null? images)
        (error (string-append "sdcl batch: no images in " in-dir)))
    (for-each
      (lambda (in-file)
        (sdcl-batch-one in-file
                        (string-append out-dir "/" (sdcl-batch-basename in-file) ".png")
                        mode prompt negative model strength steps seed))
      images)
    (display (string-append "sdcl batch: " (number->string (length images))
                            " images written to " out-dir))
    (newline)))

(script-fu-register-procedure "script-fu-sdcl-batch"
  _"sdcl _Batch Folder..."
  _"Runs sdcl img2img (or generate) over every image in a folder and writes the results as PNG into another folder"
  "The sdcl authors"
  "2025"
  SF-DIRNAME  _"Input folder"     ""
  SF-DIRNAME  _"Output folder"    ""
  SF-OPTION   _"Mode"             '(_"Image to image" _"Generate")
  SF-TEXT     _"Prompt"           ""
  SF-STRING   _"Negative prompt"  ""
  SF-FILENAME _"Model (empty: the default)" ""
  SF-ADJUSTMENT _"Strength"       '(0.5 0 1 0.05 0.1 2 0)
  SF-ADJUSTMENT _"Steps"          '(20 1 150 1 5 0 1)
  SF-ADJUSTMENT _"Seed (-1: random)" '(-1 -1 2147483647 1 100 0 1))

(script-fu-menu-register "script-fu-sdcl-batch" "<Image>/Filters/Generative")
